"""The ``pgmax`` entry point: hook implementations, importing JAX and PGMax only when called."""

from __future__ import annotations

from typing import Any

from calibrated_response_plugins.config import config_from_options
from calibrated_response_plugins.hookspecs import hookimpl
from calibrated_response_pgmax.config import PgmaxConfig


@hookimpl
def make_config(options):
    """A validated :class:`PgmaxConfig` from user options (None: defaults)."""
    return config_from_options(PgmaxConfig, options)


@hookimpl
def compile_constraints(problem, config):
    """Build the factor layout and the PGMax factor graph for a ConstraintSet."""
    from calibrated_response_pgmax.model import compile_model

    del config
    return compile_model(problem)


@hookimpl
def fit(model, config, progress):
    """Fit the dual with belief-propagation moments; return a FitResult."""
    from calibrated_response_pgmax.model import fit_model

    return fit_model(model, config, progress)


@hookimpl
def refit(fitted, model, config, progress):
    """Fit from ``fitted``'s multipliers and BP messages when they fit the model; else decline (None)."""
    from calibrated_response_pgmax.model import can_warm_start, fit_model

    if not can_warm_start(model, fitted):
        return None
    return fit_model(model, config, progress, warm_start=fitted)


@hookimpl
def marginals(fitted) -> dict[str, Any]:
    """Variable marginals (Bethe approximation) of a fitted result."""
    return dict(fitted.marginals)
