"""Settings of the PGMax backend."""

from __future__ import annotations

import math

import attrs

from calibrated_response_plugins.config import CoreConfig


def _positive_int(instance, attribute, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"config field {attribute.name!r} must be a positive integer, got {value!r}")


def _finite_non_negative(instance, attribute, value):
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"config field {attribute.name!r} must be a finite number >= 0, got {value!r}")


def _positive_float(instance, attribute, value):
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"config field {attribute.name!r} must be a finite number > 0, got {value!r}")


def _unit_interval_open_right(instance, attribute, value):
    if not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"config field {attribute.name!r} must be in [0, 1), got {value!r}")


@attrs.frozen(kw_only=True)
class PgmaxConfig(CoreConfig):
    """Dual ascent with belief-propagation moments.

    :param max_iterations: most dual (lambda) updates.
    :param bp_iterations: BP sweeps per dual update; messages are warm-started
        from the previous update.
    :param final_bp_iterations: BP sweeps at the final lambda before the
        marginals and moments are read.
    :param damping: BP message damping (0: none).
    :param learning_rate: initial Adam step size on the dual ...
    :param learning_rate_half_life: ... halved every this many updates ...
    :param min_learning_rate: ... down to this floor.
    :param adam_b2: Adam's second-moment decay (shorter memory than the usual
        0.999 tracks the curvature change as lambda settles).
    :param tolerance: converged when every projected dual gradient component
        ``E[g_k] - c_k + s_k^2 lambda_k`` is below this in absolute value ...
    :param bp_tolerance: ... and the last BP sweep moved no message more than this.
    :param chunk_size: dual updates per compiled chunk between convergence checks.
    """

    max_iterations: int = attrs.field(default=5000, validator=_positive_int)
    bp_iterations: int = attrs.field(default=10, validator=_positive_int)
    final_bp_iterations: int = attrs.field(default=200, validator=_positive_int)
    damping: float = attrs.field(default=0.5, validator=_unit_interval_open_right)
    learning_rate: float = attrs.field(default=0.05, validator=_positive_float)
    learning_rate_half_life: int = attrs.field(default=500, validator=_positive_int)
    min_learning_rate: float = attrs.field(default=1e-4, validator=_positive_float)
    adam_b2: float = attrs.field(default=0.99, validator=_unit_interval_open_right)
    tolerance: float = attrs.field(default=1e-4, validator=_positive_float)
    bp_tolerance: float = attrs.field(default=1e-4, validator=_finite_non_negative)
    chunk_size: int = attrs.field(default=100, validator=_positive_int)
