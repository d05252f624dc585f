"""The ``smm`` entry point: hook implementations of the stochastic moment matching backend.

Only the config is imported here; JAX and the engine are imported inside the hooks so
that listing or loading backends stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from calibrated_response_plugins.config import config_from_options
from calibrated_response_plugins.hookspecs import hookimpl

from calibrated_response_smm.config import SMMConfig


@hookimpl
def make_config(options: Mapping[str, Any] | None) -> SMMConfig:
    """Validated :class:`SMMConfig` from user options (None: defaults)."""
    return config_from_options(SMMConfig, options)


@hookimpl
def compile_constraints(problem, config: SMMConfig):
    """Group the constraints into factors, lay them out and colour the graph.

    With ``config.one_device_per_core`` (off by default: it is process-wide) JAX is
    first asked for one CPU device per core, which only works before JAX starts. JAX's
    persistent compilation cache is pointed at ``config.compilation_cache`` first, and its
    in-memory programs are released when the process nears its limit of memory maps.
    """
    if config.one_device_per_core:
        from calibrated_response_smm.mcmc.sharding import use_cpu_cores

        use_cpu_cores()
    from calibrated_response_smm.compilation_cache import release_compiled_programs, use_compilation_cache

    use_compilation_cache(config.compilation_cache)
    release_compiled_programs()  # a long-lived process fitting many shapes would run out of memory maps
    from calibrated_response_smm.engine import compile_model

    return compile_model(problem, config)


@hookimpl
def fit(model, config: SMMConfig, progress, provisional):
    """Fit the multipliers by stochastic moment matching; return a ``FitResult``.

    A provisional fit leaves the convergence certificate out (``confirm`` runs it).
    """
    from calibrated_response_smm.engine import fit_compiled

    return fit_compiled(model, config, progress, provisional=provisional)


@hookimpl
def refit(fitted, model, config: SMMConfig, progress, provisional):
    """Fit from ``fitted``'s chains and multipliers when the layout matches; else decline (None)."""
    from calibrated_response_smm.engine import can_warm_start, fit_compiled

    if not can_warm_start(model, fitted):
        return None
    return fit_compiled(model, config, progress, warm_start=fitted, provisional=provisional)


@hookimpl
def confirm(fitted, model, config: SMMConfig):
    """Run the convergence certificate a provisional fit left out (None when it has nothing to add)."""
    from calibrated_response_smm.engine import confirm_compiled

    return confirm_compiled(model, config, fitted)


@hookimpl
def marginals(fitted) -> dict[str, Any]:
    """Per-variable state probabilities of a fitted result."""
    return fitted.marginals
