"""``backend="auto"``: the exact ``maxent`` wherever it is expected to be faster than ``smm``.

The exact backend's cost is one pass over its enumerated joint per dual evaluation
(the sum of the independent components' joint sizes, see
``calibrated_response_maxent.model``); ``smm``'s cost hardly depends on the joint's
size. Measured on the same (shared, loaded) 2-core CPU: on the 240 shared cases maxent
took a median of 0.018 s (max 2.2 s) against smm's 0.71 s (max 32 s); on stress problems
of ``benchmarks/stress.py`` (74 thousand to 3 million joint states) maxent was faster on
all but one (2.2 million states: 83 s against 255 s; 3 million: 23 s against 25 s), the
exception a strongly conflicting problem of 2.6 million states (|lambda| up to 129) where
L-BFGS-B needed many passes: 1,241 s against smm's 902 s. Exactness tips the close calls,
so auto takes maxent up to :data:`MAX_ENUMERATED_STATES` enumerated states and
never past maxent's own size guard (``max_states``, on the whole joint: auto checks the
same product, so the guard is never what stops an auto fit). pgmax is never chosen: its
Bethe marginals are approximate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from calibrated_response_plugins.config import CoreConfig
from calibrated_response_plugins.constraints import ConstraintSet, connected_components
from calibrated_response_plugins.registry import UnknownBackendError, installed_backends, load_backend

AUTO = "auto"
EXACT, SAMPLER = "maxent", "smm"
# Largest enumerated joint (sum over independent components) auto hands to maxent: the
# size of maxent's default guard. Up to 3 million states maxent was measured faster but
# for one strongly conflicting problem (module doc); past 4 million not measured.
MAX_ENUMERATED_STATES = 4_000_000


@attrs.frozen
class BackendChoice:
    """The backend auto picked, its config, and a sentence saying why."""

    name: str
    config: Any
    reason: str
    plugins: Any = attrs.field(eq=False, repr=False)


def core_config(options: Mapping[str, Any] | Any | None) -> CoreConfig:
    """The core compiler's settings among ``options`` (a backend's own keys are ignored here)."""
    if options is None:
        return CoreConfig()
    if isinstance(options, CoreConfig):
        return CoreConfig(**{f.name: getattr(options, f.name) for f in attrs.fields(CoreConfig)})
    if not isinstance(options, Mapping):
        raise TypeError(f"config must be a mapping or a backend config, got {type(options).__name__}")
    known = {f.name for f in attrs.fields(CoreConfig)}
    return CoreConfig(**{k: v for k, v in options.items() if k in known})


def component_sizes(n_states: Sequence[int], scopes: Sequence[Sequence[int]]) -> list[int]:
    """Joint sizes of the groups of variables that shared scopes link (independent under maxent)."""
    groups = connected_components(len(n_states), [[int(v) for v in scope] for scope in scopes])
    return sorted((math.prod(int(n_states[v]) for v in group) for group in groups), reverse=True)


def _load(name: str, options: Any) -> tuple[Any, Any]:
    plugins = load_backend(name)
    return plugins, plugins.hook.make_config(options=options)


def choose_backend(constraints: ConstraintSet, options: Mapping[str, Any] | Any | None) -> BackendChoice:
    """maxent when installed, configurable with ``options``, within its size guard and
    :data:`MAX_ENUMERATED_STATES`; smm otherwise.

    :raises UnknownBackendError: if neither is installed.
    """
    installed = installed_backends()
    n_states = [int(n) for n in constraints.n_states]
    joint = math.prod(n_states)
    sizes = component_sizes(n_states, [c.scope for c in constraints.constraints])
    enumerated = sum(sizes)
    facts = (f"{joint:,} joint states; {len(sizes)} independent group(s), the largest "
             f"{sizes[0] if sizes else 1:,} states, {enumerated:,} enumerated")
    why_not, exact_config = None, None
    if EXACT not in installed:
        why_not = f"{EXACT} is not installed"
    else:
        try:
            plugins, config = _load(EXACT, options)
        except (ValueError, TypeError) as error:
            why_not = f"the config is not {EXACT}'s ({error})"
        else:
            exact_config = config
            max_states = getattr(config, "max_states", None)
            if max_states is not None and joint > max_states:
                why_not = f"{facts}: more than {EXACT}'s max_states={max_states:,}"
            elif enumerated > MAX_ENUMERATED_STATES:
                why_not = f"{facts}: more than the {MAX_ENUMERATED_STATES:,} enumerated states up to which {EXACT} is faster"
            else:
                return BackendChoice(EXACT, config, f"{facts}: the exact solve is expected faster than {SAMPLER}",
                                     plugins)
    if SAMPLER not in installed:
        raise UnknownBackendError(
            f"backend 'auto' needs {EXACT} or {SAMPLER}: {why_not}, and {SAMPLER} is not installed; "
            f"install it with: pip install calibrated-response-{SAMPLER}"
        )
    plugins, config = _load(SAMPLER, _without_exact_options(options, exact_config))
    return BackendChoice(SAMPLER, config, why_not, plugins)


def _without_exact_options(options: Any, exact_config: Any) -> Any:
    """``options`` less maxent's own keys (``max_states``, ``gtol``, ...): auto read them to decide."""
    if exact_config is None or not isinstance(options, Mapping):
        return options
    core = {f.name for f in attrs.fields(CoreConfig)}
    exact_only = {f.name for f in attrs.fields(type(exact_config))} - core
    return {k: v for k, v in options.items() if k not in exact_only}
