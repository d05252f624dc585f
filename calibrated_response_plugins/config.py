"""Settings the core compiler reads; every backend config extends :class:`CoreConfig`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeVar

import attrs

ConfigT = TypeVar("ConfigT", bound="CoreConfig")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def positive_int(instance, attribute, value):
    """attrs validator: an integer >= 1."""
    if not _is_int(value) or value < 1:
        raise ValueError(f"config field {attribute.name!r} must be a positive integer, got {value!r}")


def non_negative_int(instance, attribute, value):
    """attrs validator: an integer >= 0."""
    if not _is_int(value) or value < 0:
        raise ValueError(f"config field {attribute.name!r} must be an integer >= 0, got {value!r}")


def finite_non_negative(instance, attribute, value):
    """attrs validator: a finite number >= 0."""
    if not _is_finite_number(value) or value < 0:
        raise ValueError(f"config field {attribute.name!r} must be a finite number >= 0, got {value!r}")


def finite_positive(instance, attribute, value):
    """attrs validator: a finite number > 0."""
    if not _is_finite_number(value) or value <= 0:
        raise ValueError(f"config field {attribute.name!r} must be a finite number > 0, got {value!r}")


@attrs.frozen(kw_only=True)
class CoreConfig:
    """Compiler settings shared by all backends.

    :param max_bins: bins per continuous variable.
    :param max_arity: largest constraint scope kept; larger ones are skipped.
    :param l2_regularization: default ``s_k^2`` of the dual's l2 term.
    :param seed: random seed for stochastic backends.
    :param correlation_rounds: most rounds of the correlation loop (the first is the
        fit without correlations).
    :param correlation_tolerance: the loop stops when no correlation's pair moments
        (variables rescaled to [0, 1]) move more than this between two rounds.
    """

    max_bins: int = attrs.field(default=21, validator=positive_int)
    max_arity: int = attrs.field(default=3, validator=positive_int)
    l2_regularization: float = attrs.field(default=1e-3, validator=finite_non_negative)
    seed: int = attrs.field(default=0, validator=non_negative_int)
    correlation_rounds: int = attrs.field(default=30, validator=positive_int)
    correlation_tolerance: float = attrs.field(default=1e-6, validator=finite_positive)


def config_from_options(cls: type[ConfigT], options: Mapping[str, Any] | ConfigT | None) -> ConfigT:
    """Build ``cls`` from a mapping of options (None: defaults), naming unknown keys."""
    if options is None:
        return cls()
    if isinstance(options, cls):
        return options
    if not isinstance(options, Mapping):
        raise TypeError(f"config must be a mapping or {cls.__name__}, got {type(options).__name__}")
    known = {field.name for field in attrs.fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} option(s) {unknown}; known options are {sorted(known)}")
    return cls(**options)
