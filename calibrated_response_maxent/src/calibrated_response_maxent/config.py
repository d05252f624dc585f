"""Settings of the exact backend."""

from __future__ import annotations

import math

import attrs
from calibrated_response_plugins.config import CoreConfig

DEFAULT_MAX_STATES = 4_000_000


def _positive_int(instance, attribute, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"config field {attribute.name!r} must be a positive integer, got {value!r}")


def _non_negative_int(instance, attribute, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"config field {attribute.name!r} must be an integer >= 0, got {value!r}")


def _finite_positive(instance, attribute, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"config field {attribute.name!r} must be a finite number > 0, got {value!r}")


@attrs.frozen(kw_only=True)
class MaxentConfig(CoreConfig):
    """Core compiler settings plus the dense solver's.

    :param max_states: the largest joint (product of every variable's number of
        states) the backend will enumerate; a larger problem is refused.
    :param gtol: the fit has converged when the max-abs projected gradient of
        the dual is at most this.
    :param max_iterations: L-BFGS-B iteration cap.
    :param max_polish_steps: projected Newton steps allowed after L-BFGS-B
        when it stops above ``gtol``.
    """

    max_states: int = attrs.field(default=DEFAULT_MAX_STATES, validator=_positive_int)
    gtol: float = attrs.field(default=1e-8, validator=_finite_positive)
    max_iterations: int = attrs.field(default=10_000, validator=_positive_int)
    max_polish_steps: int = attrs.field(default=25, validator=_non_negative_int)
