"""Settings of the PGMax backend."""

from __future__ import annotations

import attrs

from calibrated_response_plugins.config import (
    CoreConfig,
    finite_non_negative,
    finite_positive,
    non_negative_int,
    positive_int,
)


def _unit_interval_open_right(instance, attribute, value):
    if not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"config field {attribute.name!r} must be in [0, 1), got {value!r}")


@attrs.frozen(kw_only=True)
class PgmaxConfig(CoreConfig):
    """L-BFGS-B on the Bethe dual, each evaluation a warm-started sum-product BP run.

    :param max_iterations: most L-BFGS-B iterations on the dual.
    :param restarts: L-BFGS-B restarts (fresh curvature memory) from the last
        point when a run stops unconverged, e.g. on a failed line search.
    :param bp_iterations: BP sweeps per compiled call; an evaluation repeats
        calls until the messages settle ...
    :param max_bp_iterations: ... or this many sweeps have run.
    :param final_bp_iterations: BP sweeps at the final lambda before the
        marginals and moments are read.
    :param damping: BP message damping (0: none).
    :param tolerance: converged when every projected dual gradient component
        ``E[g_k] - c_k + s_k^2 lambda_k`` is below this in absolute value ...
    :param bp_tolerance: ... and the last BP sweep moved no message more than this.
    """

    max_iterations: int = attrs.field(default=500, validator=positive_int)
    restarts: int = attrs.field(default=3, validator=non_negative_int)
    bp_iterations: int = attrs.field(default=20, validator=positive_int)
    max_bp_iterations: int = attrs.field(default=1000, validator=positive_int)
    final_bp_iterations: int = attrs.field(default=200, validator=positive_int)
    damping: float = attrs.field(default=0.5, validator=_unit_interval_open_right)
    tolerance: float = attrs.field(default=1e-5, validator=finite_positive)
    bp_tolerance: float = attrs.field(default=1e-9, validator=finite_non_negative)
