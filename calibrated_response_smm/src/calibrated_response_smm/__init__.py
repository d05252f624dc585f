"""Stochastic moment matching backend: persistent chromatic Gibbs chains in JAX.

Importing the package is cheap (no JAX); the engine modules import JAX when used.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "SMMConfig": ".config",
    "SMMVariable": ".graph",
    "Factor": ".graph",
    "FactorGraph": ".graph",
    "fit_smm": ".training",
    "fit_model": ".training",
    "SMMModel": ".training",
    "build_targets_from_marginals": ".targets",
    "build_targets_from_samples": ".targets",
    "graph_from_constraints": ".adapters",
    "DistributionBuilder": ".distribution_builder",
    "PersistentBuffer": ".mcmc.buffer",
    "use_cpu_cores": ".mcmc.sharding",
}

__all__ = [
    "DistributionBuilder",
    "Factor",
    "FactorGraph",
    "PersistentBuffer",
    "SMMConfig",
    "SMMModel",
    "SMMVariable",
    "build_targets_from_marginals",
    "build_targets_from_samples",
    "fit_model",
    "fit_smm",
    "graph_from_constraints",
    "use_cpu_cores",
]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
