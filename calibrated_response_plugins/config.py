"""Settings the core compiler reads; every backend config extends :class:`CoreConfig`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

import attrs

ConfigT = TypeVar("ConfigT", bound="CoreConfig")

#: Most bins per continuous variable (docs/limits.md): finer grids make every table
#: ``max_bins**arity`` cells, and backends may set a lower limit of their own.
MAX_BINS = 1000
#: Seeds are taken as 64-bit words; a larger one would alias a smaller one.
MAX_SEED = 2**64 - 1


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond float range
        return False


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


def int_at_most(limit: int):
    """attrs validator: an integer <= ``limit`` (combine with :func:`positive_int`)."""

    def check(instance, attribute, value):
        if _is_int(value) and value > limit:
            raise ValueError(f"config field {attribute.name!r} must be at most {limit}, got {_short(value)}")

    return check


def number_at_most(limit: float):
    """attrs validator: a number <= ``limit`` (combine with a finite-number validator)."""

    def check(instance, attribute, value):
        if _is_finite_number(value) and value > limit:
            raise ValueError(f"config field {attribute.name!r} must be at most {limit:g}, got {value!r}")

    return check


def number_at_least(limit: float):
    """attrs validator: a number >= ``limit`` (combine with a finite-number validator)."""

    def check(instance, attribute, value):
        if _is_finite_number(value) and value < limit:
            raise ValueError(f"config field {attribute.name!r} must be at least {limit:g}, got {value!r}")

    return check


def positive_int(instance, attribute, value):
    """attrs validator: an integer >= 1."""
    if not _is_int(value) or value < 1:
        raise ValueError(f"config field {attribute.name!r} must be a positive integer, got {_short(value)}")


def non_negative_int(instance, attribute, value):
    """attrs validator: an integer >= 0."""
    if not _is_int(value) or value < 0:
        raise ValueError(f"config field {attribute.name!r} must be an integer >= 0, got {_short(value)}")


def finite_non_negative(instance, attribute, value):
    """attrs validator: a finite number >= 0."""
    if not _is_finite_number(value) or value < 0:
        raise ValueError(f"config field {attribute.name!r} must be a finite number >= 0, got {_short(value)}")


def finite_positive(instance, attribute, value):
    """attrs validator: a finite number > 0."""
    if not _is_finite_number(value) or value <= 0:
        raise ValueError(f"config field {attribute.name!r} must be a finite number > 0, got {_short(value)}")


@attrs.frozen(kw_only=True)
class CoreConfig:
    """Compiler settings shared by all backends.

    :param max_bins: bins per continuous variable, at most ``MAX_BINS``.
    :param max_arity: largest constraint scope kept; larger ones are skipped.
    :param l2_regularization: default ``s_k^2`` of the dual's l2 term; the compiler
        holds it to ``[MIN_S2, MAX_S2]`` (docs/limits.md), so 0 means "as exact as the
        solver can".
    :param seed: random seed for stochastic backends, in ``[0, 2**64 - 1]``.
    :param correlation_rounds: most rounds of the correlation loop (the first is the
        fit without correlations).
    :param correlation_tolerance: the loop stops when no correlation's pair moments
        (variables rescaled to [0, 1]) move more than this between two rounds (or, for a
        sampling backend, more than two standard errors of its means).

    A backend whose engine fits scopes of at most ``n`` variables says so by setting
    the class attribute ``supported_arity = n`` on its config class; the compiler
    then skips wider scopes with a reason, whatever ``max_arity`` allows.
    """

    #: widest constraint scope the backend fits (None: no limit of its own).
    supported_arity: ClassVar[int | None] = None

    max_bins: int = attrs.field(default=21, validator=[positive_int, int_at_most(MAX_BINS)])
    max_arity: int = attrs.field(default=3, validator=positive_int)
    l2_regularization: float = attrs.field(default=1e-3, validator=finite_non_negative)
    seed: int = attrs.field(default=0, validator=[non_negative_int, int_at_most(MAX_SEED)])
    correlation_rounds: int = attrs.field(default=30, validator=positive_int)
    correlation_tolerance: float = attrs.field(default=1e-6, validator=finite_positive)


def config_from_options(cls: type[ConfigT], options: Mapping[str, Any] | ConfigT | None) -> ConfigT:
    """Build ``cls`` from a mapping of options (None: defaults), naming unknown keys."""
    if options is None:
        return cls()
    if isinstance(options, cls):
        return options
    if not isinstance(options, Mapping):
        raise ValueError(f"config must be a mapping of option names to values or a {cls.__name__}, "
                         f"got {type(options).__name__}")
    not_names = [key for key in options if not isinstance(key, str)]
    if not_names:
        raise ValueError(f"config option names must be strings, got {_short(not_names)}")
    known = {field.name for field in attrs.fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} option(s) {unknown}; known options are {sorted(known)}")
    return cls(**options)
