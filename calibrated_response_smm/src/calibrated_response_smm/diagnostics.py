"""Moment-error summaries used in the training history and reports."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def max_moment_error(residual) -> jnp.ndarray:
    """Largest absolute moment error ``max_k |c_k - E[g_k] - s_k^2 lambda_k|``."""
    return jnp.max(jnp.abs(residual)) if jnp.size(residual) else jnp.zeros(())


def mean_moment_error(residual) -> jnp.ndarray:
    """Mean absolute moment error."""
    return jnp.mean(jnp.abs(residual)) if jnp.size(residual) else jnp.zeros(())


def moment_errors(targets: np.ndarray, means: np.ndarray, s2: np.ndarray, lambdas: np.ndarray) -> np.ndarray:
    """Host-side residuals ``c - E[g] - s^2 lambda`` of a fitted constraint set."""
    return np.asarray(targets) - np.asarray(means) - np.asarray(s2) * np.asarray(lambdas)
