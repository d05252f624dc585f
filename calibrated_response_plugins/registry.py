"""Backend discovery: entry points in the group ``calibrated_response.backends``.

Only the chosen backend's entry point is loaded (its module stays light; heavy
imports happen inside its hooks), and ``check_pending`` makes a plugin with a
misspelt hook fail loudly.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import pluggy

from calibrated_response_plugins import hookspecs

ENTRY_POINT_GROUP = "calibrated_response.backends"
KNOWN_DISTRIBUTIONS = {
    "smm": "calibrated-response-smm",
    "maxent": "calibrated-response-maxent",
    "pgmax": "calibrated-response-pgmax",
}

# Backends registered in-process (tests, notebooks) by :func:`register_backend`.
_LOCAL_BACKENDS: dict[str, Any] = {}


class UnknownBackendError(KeyError):
    """The requested backend is not installed; the message lists the installed ones."""

    def __str__(self) -> str:  # KeyError would quote the message.
        return str(self.args[0])


def register_backend(name: str, plugin: Any) -> None:
    """Make ``plugin`` (a module or object with ``@hookimpl`` methods) available as ``name``."""
    _LOCAL_BACKENDS[name] = plugin


def unregister_backend(name: str) -> None:
    _LOCAL_BACKENDS.pop(name, None)


def installed_backends() -> dict[str, str]:
    """``{name: where it comes from}`` for every backend that can be loaded."""
    found = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        found[ep.name] = f"{dist.name} {dist.version}" if dist is not None else ep.value
    for name, plugin in _LOCAL_BACKENDS.items():
        found[name] = f"registered in process ({getattr(plugin, '__name__', type(plugin).__name__)})"
    return dict(sorted(found.items()))


def _unknown_backend(name: str) -> UnknownBackendError:
    installed = sorted(installed_backends())
    listing = ", ".join(installed) if installed else "none"
    distribution = KNOWN_DISTRIBUTIONS.get(name)
    hint = (
        f"; install it with: pip install {distribution}"
        if distribution
        else "; a backend registers itself under the entry-point group " + ENTRY_POINT_GROUP
    )
    return UnknownBackendError(f"unknown backend {name!r}; installed backends: {listing}{hint}")


def load_backend(name: str) -> pluggy.PluginManager:
    """A plugin manager holding the hook specs and exactly the backend ``name``."""
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    if name in _LOCAL_BACKENDS:
        manager.register(_LOCAL_BACKENDS[name], name=name)
    else:
        manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=name)
    if not manager.get_plugins():
        raise _unknown_backend(name)
    manager.check_pending()
    return manager
