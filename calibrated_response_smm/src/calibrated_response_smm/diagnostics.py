"""Moment-error summaries used in the training history and reports."""

from __future__ import annotations

import jax.numpy as jnp


def max_moment_error(residual) -> jnp.ndarray:
    """Largest absolute moment error ``max_k |c_k - E[g_k] - s_k^2 lambda_k|``."""
    return jnp.max(jnp.abs(residual)) if jnp.size(residual) else jnp.zeros(())


def mean_moment_error(residual) -> jnp.ndarray:
    """Mean absolute moment error."""
    return jnp.mean(jnp.abs(residual)) if jnp.size(residual) else jnp.zeros(())
