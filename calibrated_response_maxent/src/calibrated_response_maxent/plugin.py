"""The ``maxent`` entry point: hook implementations of the exact dense backend.

This module only imports the config; numpy/scipy work is imported inside the
hooks so that listing or loading backends stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from calibrated_response_plugins.config import config_from_options
from calibrated_response_plugins.hookspecs import hookimpl

from calibrated_response_maxent.config import MaxentConfig


@hookimpl
def make_config(options: Mapping[str, Any] | None) -> MaxentConfig:
    """Validated :class:`MaxentConfig` from user options (None: defaults)."""
    return config_from_options(MaxentConfig, options)


@hookimpl
def compile_constraints(problem, config: MaxentConfig):
    """Refuse joints above ``config.max_states``; build the dense model."""
    from calibrated_response_maxent.model import build_dense_model, check_joint_size

    check_joint_size(problem.n_states, config.max_states)
    return build_dense_model(problem)


@hookimpl
def fit(model, config: MaxentConfig, progress):
    """Solve the dual exactly; return a ``FitResult``."""
    from calibrated_response_maxent.solver import fit_dense_model

    return fit_dense_model(model, config, progress)


@hookimpl
def refit(fitted, model, config: MaxentConfig, progress):
    """Solve the dual of ``model`` with L-BFGS-B started at ``fitted``'s multipliers."""
    import numpy as np

    from calibrated_response_maxent.solver import fit_dense_model

    if np.shape(fitted.lambdas) != (model.n_constraints,):
        return None  # not the same constraints: a fresh fit
    return fit_dense_model(model, config, progress, initial_lambdas=fitted.lambdas)


@hookimpl
def marginals(fitted) -> dict[str, Any]:
    """Per-variable state probabilities of a fitted result."""
    return fitted.marginals
