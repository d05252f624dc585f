"""Settings of the exact backend."""

from __future__ import annotations

from typing import ClassVar

import attrs
from calibrated_response_plugins.config import (
    CoreConfig,
    finite_positive,
    int_at_most,
    non_negative_int,
    positive_int,
)

DEFAULT_MAX_STATES = 4_000_000
#: Largest ``max_states`` accepted: each evaluation holds a few float64 arrays of the
#: joint's size (0.8 GB each at this size), so a larger joint would not fit in memory.
MAX_MAX_STATES = 100_000_000


@attrs.frozen(kw_only=True)
class MaxentConfig(CoreConfig):
    """Core compiler settings plus the dense solver's.

    :param max_states: the largest joint (product of every variable's number of
        states) the backend will enumerate; a larger problem is refused. At most
        ``MAX_MAX_STATES``.
    :param gtol: the fit has converged when the max-abs projected gradient of
        the dual is at most this.
    :param max_iterations: L-BFGS-B iteration cap.
    :param max_polish_steps: projected Newton steps allowed after L-BFGS-B
        when it stops above ``gtol``.
    """

    #: the field the core's correlation loop loosens on its early rounds (an inexact inner solve).
    inner_tolerance_field: ClassVar[str | None] = "gtol"

    max_states: int = attrs.field(default=DEFAULT_MAX_STATES, validator=[positive_int, int_at_most(MAX_MAX_STATES)])
    gtol: float = attrs.field(default=1e-8, validator=finite_positive)
    max_iterations: int = attrs.field(default=10_000, validator=positive_int)
    max_polish_steps: int = attrs.field(default=25, validator=non_negative_int)
