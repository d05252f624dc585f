"""Hook specifications a backend implements (pluggy project ``calibrated_response``).

A backend is a module or object with ``@hookimpl`` functions, registered under
the entry-point group ``calibrated_response.backends``. Only the chosen
backend's plugin is loaded, so each hook below has exactly one implementation
per builder; all are ``firstresult``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pluggy

from calibrated_response_plugins.config import CoreConfig
from calibrated_response_plugins.constraints import ConstraintSet, FitResult

#: a progress callback: ``progress(done, total, metrics)``.
Progress = Callable[[int, int, dict], None]

PROJECT_NAME = "calibrated_response"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec(firstresult=True)
def make_config(options: Mapping[str, Any] | CoreConfig | None) -> CoreConfig:
    """Build the backend's validated config from user options (None: defaults).

    The config is a :class:`CoreConfig` subclass: the core compiler reads its
    ``max_bins``, ``max_arity``, ``l2_regularization`` and ``supported_arity``.
    Stops at first non-None result.

    :param options: a mapping of option names to values, or None.
    """


@hookspec(firstresult=True)
def compile_constraints(problem: ConstraintSet, config: CoreConfig) -> Any:
    """Turn the core's compiled :class:`~calibrated_response_plugins.ConstraintSet` into the backend model.

    Stops at first non-None result.

    :param problem: the ``ConstraintSet`` (domains, constraints, skips).
    :param config: the backend config returned by ``make_config``.
    """


@hookspec(firstresult=True)
def fit(model: Any, config: CoreConfig, progress: Progress | None, provisional: bool) -> FitResult:
    """Fit the model; return a :class:`~calibrated_response_plugins.FitResult`.

    Stops at first non-None result.

    :param model: what ``compile_constraints`` returned.
    :param config: the backend config.
    :param progress: called as ``progress(done, total, metrics)`` between chunks
        of work, or None.
    :param provisional: the core may replace this fit by a later one (a round of the
        correlation loop): the backend may leave out checks that only the answer
        needs, and the core calls ``confirm`` on the fit it keeps.
    """


@hookspec(firstresult=True)
def refit(fitted: FitResult, model: Any, config: CoreConfig, progress: Progress | None,
          provisional: bool) -> FitResult | None:
    """Fit ``model`` warm-started from ``fitted``; return a ``FitResult``, or None to decline.

    ``model`` is what ``compile_constraints`` returned for a problem with the same
    domains and the same constraint scopes and relations, in the same order, as the
    one ``fitted`` came from; only feature tables and targets differ (the core's
    correlation loop refits that way each round). A backend starts from the earlier
    multipliers (and chains, messages, ...) instead of from zero. Returning None,
    or implementing no ``refit`` at all, makes the core call ``fit`` instead.
    Stops at first non-None result.

    :param fitted: what ``fit`` or ``refit`` returned for the earlier problem.
    :param model: what ``compile_constraints`` returned for the new problem.
    :param config: the backend config.
    :param progress: as for ``fit``.
    :param provisional: as for ``fit``.
    """


@hookspec(firstresult=True)
def confirm(fitted: FitResult, model: Any, config: CoreConfig) -> FitResult | None:
    """Run on the fit the core keeps the checks a provisional fit left out; None: nothing to add.

    Called once, after the correlation loop, with its last round's fit (always
    provisional) and that round's model. The returned result replaces ``fitted``
    (its ``converged`` flag and warnings included). A backend whose provisional fits
    leave nothing out need not implement it. Stops at first non-None result.

    :param fitted: what the last provisional ``fit`` or ``refit`` returned.
    :param model: what ``compile_constraints`` returned for that fit's problem.
    :param config: the backend config.
    """


@hookspec(firstresult=True)
def marginals(fitted: FitResult) -> dict[str, np.ndarray]:
    """Return ``{variable name: state probabilities}`` for a fitted result.

    Stops at first non-None result.

    :param fitted: what ``fit`` returned.
    """
