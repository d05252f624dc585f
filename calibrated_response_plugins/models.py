"""Variables, propositions and estimates, with the upstream ``calibrated_response`` field names.

Every class is a frozen, validated attrs class. :func:`coerce_variable` and
:func:`coerce_estimate` accept these classes, plain dicts in the upstream JSON
format (with or without a ``"__class__"`` wrapper) or any object with the right
attributes (upstream pydantic models are read by attribute, never imported).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any, ClassVar, Union

import attrs

RELATIONS = ("eq", "le", "ge")

#: Largest magnitude of a continuous variable's bound: squares of values (variances,
#: second moments) stay finite in float64. See docs/limits.md.
MAX_BOUND = 1e150
#: Smallest span ``upper_bound - lower_bound`` of a continuous variable, absolute ...
MIN_SPAN = 1e-150
#: ... and relative to the larger bound's magnitude: every bin of the finest grid
#: (``MAX_BINS``) still spans thousands of float steps, so bin overlaps are exact to ~1e-4.
MIN_RELATIVE_SPAN = 1e-9


class ModelInputError(ValueError):
    """A variable or estimate is malformed; the message names it and the field."""


# --------------------------------------------------------------------------- helpers


def _enum_value(value: Any) -> Any:
    """Upstream fields are ``str`` enums; compare by their value."""
    return getattr(value, "value", value)


def _owner(instance: Any) -> str:
    if isinstance(instance, _Estimate):
        return f"estimate {instance.id!r}"
    if isinstance(instance, (BinaryVariable, ContinuousVariable)):
        return f"variable {instance.name!r}"
    return f"proposition on {getattr(instance, 'variable', '?')!r}"


def _is_number(value: Any) -> bool:
    """A real number that is not a bool (numeric strings are not numbers)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _finite(instance, attribute, value):
    if value is None:
        raise ModelInputError(f"{_owner(instance)}: missing field {attribute.name!r}")
    if not _is_number(value):
        raise ModelInputError(f"{_owner(instance)}: field {attribute.name!r} must be a finite number, got {value!r}")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an integer beyond float range
        finite = False
    if not finite:
        raise ModelInputError(
            f"{_owner(instance)}: field {attribute.name!r} must be a finite number, got {_short(value)}"
        )


def _short(value: Any) -> str:
    """``repr`` of a value, cut so that a 400-digit integer does not fill the message."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


def _optional_non_negative(instance, attribute, value):
    if value is None:
        return
    _finite(instance, attribute, value)
    if value < 0:
        raise ModelInputError(f"{_owner(instance)}: field {attribute.name!r} must be >= 0, got {value!r}")


def _probability(instance, attribute, value):
    _finite(instance, attribute, value)
    if not 0.0 <= value <= 1.0:
        raise ModelInputError(f"{_owner(instance)}: field {attribute.name!r} must be in [0, 1], got {value!r}")


def _non_empty_str(instance, attribute, value):
    if not isinstance(value, str) or not value:
        raise ModelInputError(
            f"{_owner(instance)}: field {attribute.name!r} must be a non-empty string, got {_short(value)}"
        )


def _relation(instance, attribute, value):
    if not isinstance(value, str) or value not in RELATIONS:
        raise ModelInputError(f"{_owner(instance)}: field 'relation' must be one of {RELATIONS}, got {value!r}")


def _strict_bool(instance, attribute, value):
    if not isinstance(value, bool):
        raise ModelInputError(f"{_owner(instance)}: field {attribute.name!r} must be true or false, got {value!r}")


def _to_float(value: Any) -> Any:
    # Only real numbers convert; anything else (strings included) stays as it is so
    # the validator can name it. An integer beyond float range stays an integer.
    if not _is_number(value):
        return value
    try:
        return float(value)
    except OverflowError:
        return value


def _optional_float(value: Any) -> Any:
    return None if value is None else _to_float(value)


def _read_bool(value: Any) -> Any:
    """True/False, also 1/0 as integers; anything else stays as it is for the validator to name.

    ``bool()`` would read the strings "false", "no" and "0" as True.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral) and value in (0, 1):
        return bool(value)
    if getattr(value, "dtype", None) is not None and value.dtype.kind == "b" and value.shape == ():
        return bool(value)  # a numpy boolean scalar, without importing numpy here
    return value


# --------------------------------------------------------------------------- variables


@attrs.frozen
class BinaryVariable:
    """A yes/no variable: states 0 (false) and 1 (true)."""

    name: str = attrs.field(validator=_non_empty_str)
    description: str = ""
    type: str = attrs.field(default="binary", converter=_enum_value)

    @type.validator
    def _check_type(self, attribute, value):
        if value != "binary":
            raise ModelInputError(f"variable {self.name!r}: field 'type' must be 'binary', got {value!r}")


@attrs.frozen
class ContinuousVariable:
    """A real-valued variable on the finite range ``[lower_bound, upper_bound]``."""

    name: str = attrs.field(validator=_non_empty_str)
    description: str = ""
    type: str = attrs.field(default="continuous", converter=_enum_value)
    # No default value: a bound left out is an error, not 0.0.
    lower_bound: float = attrs.field(default=None, converter=_optional_float, validator=_finite)
    upper_bound: float = attrs.field(default=None, converter=_optional_float, validator=_finite)
    unit: str | None = None

    @type.validator
    def _check_type(self, attribute, value):
        if value != "continuous":
            raise ModelInputError(f"variable {self.name!r}: field 'type' must be 'continuous', got {value!r}")

    def __attrs_post_init__(self):
        if not self.lower_bound < self.upper_bound:
            raise ModelInputError(
                f"variable {self.name!r}: lower_bound ({self.lower_bound}) must be below "
                f"upper_bound ({self.upper_bound})"
            )
        check_bounds(self.name, self.lower_bound, self.upper_bound)

    def get_domain(self) -> tuple[float, float]:
        return (self.lower_bound, self.upper_bound)


def check_bounds(name: str, lower: float, upper: float) -> None:
    """Refuse bounds the binning cannot represent (limits in docs/limits.md)."""
    magnitude = max(abs(lower), abs(upper))
    if magnitude > MAX_BOUND:
        raise ModelInputError(
            f"variable {name!r}: bounds [{lower:g}, {upper:g}] exceed the largest supported magnitude "
            f"{MAX_BOUND:g}; rescale the variable (e.g. to other units)"
        )
    span = upper - lower
    if span < MIN_SPAN or span < MIN_RELATIVE_SPAN * magnitude:
        raise ModelInputError(
            f"variable {name!r}: range [{lower!r}, {upper!r}] is too narrow to be binned: its span must be "
            f"at least {MIN_SPAN:g} and at least {MIN_RELATIVE_SPAN:g} times the larger bound's magnitude; "
            "shift or rescale the variable"
        )


Variable = Union[BinaryVariable, ContinuousVariable]

# --------------------------------------------------------------------------- propositions


@attrs.frozen
class EqualityProposition:
    """``variable == value`` on a binary variable (value True/False, 1/0, or yes/no strings)."""

    variable: str = attrs.field(validator=_non_empty_str)
    value: bool | str | int | float = attrs.field()
    variable_type: str = attrs.field(default="binary", converter=_enum_value)
    proposition_type: str = attrs.field(default="equality", converter=_enum_value)

    @value.validator
    def _check_value(self, attribute, value):
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            raise ModelInputError(f"proposition on {self.variable!r}: field 'value' must be set, got {value!r}")


@attrs.frozen
class InequalityProposition:
    """``variable > threshold`` (``is_lower_bound=True``) or ``variable < threshold``."""

    variable: str = attrs.field(validator=_non_empty_str)
    threshold: float = attrs.field(converter=_to_float, validator=_finite)
    is_lower_bound: bool = attrs.field(default=True, converter=_read_bool, validator=_strict_bool)
    variable_type: str = attrs.field(default="continuous", converter=_enum_value)
    proposition_type: str = attrs.field(default="inequality", converter=_enum_value)


Proposition = Union[EqualityProposition, InequalityProposition]

# --------------------------------------------------------------------------- estimates


@attrs.frozen(kw_only=True)
class _Estimate:
    """Fields every estimate carries: ``id``, ``relation`` (eq/le/ge), ``sd``, ``n``."""

    estimate_type: ClassVar[str]
    id: str = attrs.field(validator=_non_empty_str)
    relation: str = attrs.field(default="eq", converter=_enum_value, validator=_relation)
    sd: float | None = attrs.field(default=None, converter=_optional_float, validator=_optional_non_negative)
    n: int | float | None = attrs.field(default=None, validator=_optional_non_negative)
    provenance: str | None = None


@attrs.frozen(kw_only=True)
class ProbabilityEstimate(_Estimate):
    """``P(proposition) = probability``."""

    estimate_type: ClassVar[str] = "probability"
    proposition: Proposition
    probability: float = attrs.field(converter=_to_float, validator=_probability)


@attrs.frozen(kw_only=True)
class ExpectationEstimate(_Estimate):
    """``E[variable] = expected_value``."""

    estimate_type: ClassVar[str] = "expectation"
    variable: str = attrs.field(validator=_non_empty_str)
    expected_value: float = attrs.field(converter=_to_float, validator=_finite)


@attrs.frozen(kw_only=True)
class ConditionalProbabilityEstimate(_Estimate):
    """``P(proposition | all conditions) = probability``."""

    estimate_type: ClassVar[str] = "conditional_probability"
    proposition: Proposition
    conditions: tuple[Proposition, ...] = attrs.field(factory=tuple, converter=tuple)
    probability: float = attrs.field(converter=_to_float, validator=_probability)


@attrs.frozen(kw_only=True)
class ConditionalExpectationEstimate(_Estimate):
    """``E[variable | all conditions] = expected_value``."""

    estimate_type: ClassVar[str] = "conditional_expectation"
    variable: str = attrs.field(validator=_non_empty_str)
    conditions: tuple[Proposition, ...] = attrs.field(factory=tuple, converter=tuple)
    expected_value: float = attrs.field(converter=_to_float, validator=_finite)


@attrs.frozen(kw_only=True)
class CorrelationEstimate(_Estimate):
    """``corr(variable_a, variable_b) = correlation`` (read and kept; not yet fitted)."""

    estimate_type: ClassVar[str] = "correlation"
    variable_a: str = attrs.field(validator=_non_empty_str)
    variable_b: str = attrs.field(validator=_non_empty_str)
    correlation: float = attrs.field(converter=_to_float, validator=_finite)

    @correlation.validator
    def _check_range(self, attribute, value):
        if not -1.0 <= value <= 1.0:
            raise ModelInputError(f"estimate {self.id!r}: field 'correlation' must be in [-1, 1], got {value!r}")


@attrs.frozen(kw_only=True)
class EquationEstimate(_Estimate):
    """A structural equation ``lhs = rhs + noise`` (read and kept; not yet fitted)."""

    estimate_type: ClassVar[str] = "equation"
    lhs: str = attrs.field(validator=_non_empty_str)
    rhs: str = attrs.field(validator=_non_empty_str)
    noise_sd: float | None = attrs.field(default=None, converter=_optional_float, validator=_optional_non_negative)


Estimate = Union[
    ProbabilityEstimate,
    ExpectationEstimate,
    ConditionalProbabilityEstimate,
    ConditionalExpectationEstimate,
    CorrelationEstimate,
    EquationEstimate,
]
ESTIMATE_CLASSES: dict[str, type] = {
    cls.estimate_type: cls
    for cls in (
        ProbabilityEstimate,
        ExpectationEstimate,
        ConditionalProbabilityEstimate,
        ConditionalExpectationEstimate,
        CorrelationEstimate,
        EquationEstimate,
    )
}
_CLASS_NAMES = {cls.__name__: kind for kind, cls in ESTIMATE_CLASSES.items()}
_VARIABLE_CLASSES = {"binary": BinaryVariable, "continuous": ContinuousVariable}

# --------------------------------------------------------------------------- coercion


def _unwrap(data: Mapping[str, Any]) -> tuple[Mapping[str, Any], str | None]:
    """Strip a ``{"__class__": name, ...}`` cache wrapper; return (fields, class name)."""
    if "__class__" not in data:
        return data, None
    class_name = str(data["__class__"]).rsplit(".", 1)[-1]
    for key in ("data", "fields", "__data__", "value"):
        if isinstance(data.get(key), Mapping):
            return data[key], class_name
    return {k: v for k, v in data.items() if k != "__class__"}, class_name


def _read(obj: Any, owner: str, field: str, *, default: Any = attrs.NOTHING) -> Any:
    """Read ``field`` from a mapping or by attribute; a missing required field is named."""
    if isinstance(obj, Mapping):
        if field in obj:
            return obj[field]
    elif hasattr(obj, field):
        return getattr(obj, field)
    if default is attrs.NOTHING:
        raise ModelInputError(f"{owner}: missing field {field!r}")
    return default


def _fields_of(cls: type, obj: Any, owner: str, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    values = {}
    for field in attrs.fields(cls):
        if field.name in skip:
            continue
        default = attrs.NOTHING
        if field.default is not attrs.NOTHING:
            default = field.default.factory() if isinstance(field.default, attrs.Factory) else field.default
        values[field.name] = _read(obj, owner, field.name, default=default)
    return values


def _kind(value: Any, owner: str, field: str, known: Any) -> str:
    """An enum-or-string type field, checked to be one of ``known``."""
    kind = _enum_value(value)
    if not isinstance(kind, str) or kind not in known:
        choices = " or ".join(repr(k) for k in known)
        raise ModelInputError(f"{owner}: field {field!r} must be {choices}, got {_short(kind)}")
    return kind


def _as_list(value: Any, owner: str, field: str) -> list[Any]:
    """A JSON array (list or tuple); a string, a mapping, a number or null is named."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)):
        raise ModelInputError(f"{owner}: field {field!r} must be a list, got {_short(value)}")
    return list(value)


def coerce_variables(objs: Any) -> list[Variable]:
    """:func:`coerce_variable` over a list, refusing anything that is not a list."""
    return [coerce_variable(v) for v in _as_list(objs, "problem", "variables")]


def coerce_estimates(objs: Any) -> list[Estimate]:
    """:func:`coerce_estimate` over a list, refusing anything that is not a list."""
    return [coerce_estimate(e) for e in _as_list(objs, "problem", "estimates")]


def coerce_variable(obj: Any) -> Variable:
    """Build a variable from an instance, a dict or an object with the upstream attributes."""
    if isinstance(obj, (BinaryVariable, ContinuousVariable)):
        return obj
    if isinstance(obj, Mapping):
        obj, _ = _unwrap(obj)
    name = _read(obj, "variable", "name")
    owner = f"variable {_short(name)}"
    kind = _kind(_read(obj, owner, "type", default="continuous"), owner, "type", _VARIABLE_CLASSES)
    cls = _VARIABLE_CLASSES[kind]
    if cls is ContinuousVariable:
        for bound in ("lower_bound", "upper_bound"):
            _read(obj, owner, bound)  # required: a missing bound is not 0.0
    return cls(**_fields_of(cls, obj, owner))


def coerce_proposition(obj: Any, owner: str = "estimate") -> Proposition:
    """Build a proposition from an instance, a dict or an upstream object.

    Errors name ``owner`` (the estimate) as well as the proposition's variable.
    """
    if isinstance(obj, (EqualityProposition, InequalityProposition)):
        return obj
    if isinstance(obj, Mapping):
        obj, _ = _unwrap(obj)
    kind = _enum_value(_read(obj, owner, "proposition_type", default=None))
    if kind is None:
        kind = "inequality" if _read(obj, owner, "threshold", default=None) is not None else "equality"
    kind = _kind(kind, owner, "proposition_type", ("equality", "inequality"))
    try:
        if kind == "equality":
            return EqualityProposition(**_fields_of(EqualityProposition, obj, f"{owner} proposition"))
        values = _fields_of(InequalityProposition, obj, f"{owner} proposition", skip=("is_lower_bound",))
        # Older upstream releases spell the direction ``greater``.
        lower = _read(obj, owner, "is_lower_bound", default=None)
        if lower is None:
            lower = _read(obj, owner, "greater", default=None)
        if lower is None:
            raise ModelInputError(f"{owner}: inequality proposition missing field 'is_lower_bound'")
        return InequalityProposition(is_lower_bound=lower, **values)
    except ModelInputError as error:
        message = str(error)
        raise ModelInputError(message if message.startswith(owner) else f"{owner}: {message}") from None


def coerce_estimate(obj: Any) -> Estimate:
    """Build an estimate from an instance, a dict or an upstream object."""
    if isinstance(obj, tuple(ESTIMATE_CLASSES.values())):
        return obj
    class_name = None
    if isinstance(obj, Mapping):
        obj, class_name = _unwrap(obj)
    estimate_id = _read(obj, "estimate", "id")
    owner = f"estimate {_short(estimate_id)}"
    kind = _enum_value(_read(obj, owner, "estimate_type", default=_CLASS_NAMES.get(class_name or "")))
    if not isinstance(kind, str) or kind not in ESTIMATE_CLASSES:
        raise ModelInputError(
            f"{owner}: unknown estimate_type {_short(kind)}; known types are {sorted(ESTIMATE_CLASSES)}"
        )
    cls = ESTIMATE_CLASSES[kind]
    values = _fields_of(cls, obj, owner)
    if "proposition" in values:
        values["proposition"] = coerce_proposition(values["proposition"], owner)
    if "conditions" in values:
        conditions = () if values["conditions"] is None else _as_list(values["conditions"], owner, "conditions")
        values["conditions"] = tuple(coerce_proposition(c, owner) for c in conditions)
    return cls(**values)


# --------------------------------------------------------------------------- serialisation


def proposition_to_dict(proposition: Proposition) -> dict[str, Any]:
    data = {"proposition_type": proposition.proposition_type, "variable": proposition.variable,
            "variable_type": proposition.variable_type}
    if isinstance(proposition, EqualityProposition):
        data["value"] = proposition.value
    else:
        data["threshold"] = proposition.threshold
        data["is_lower_bound"] = proposition.is_lower_bound
    return data


def variable_to_dict(variable: Variable) -> dict[str, Any]:
    return attrs.asdict(variable)


def estimate_to_dict(estimate: Estimate) -> dict[str, Any]:
    data: dict[str, Any] = {"id": estimate.id, "estimate_type": estimate.estimate_type}
    for field in attrs.fields(type(estimate)):
        value = getattr(estimate, field.name)
        if field.name == "id" or (field.name == "provenance" and value is None):
            continue
        if field.name == "proposition":
            value = proposition_to_dict(value)
        elif field.name == "conditions":
            value = [proposition_to_dict(c) for c in value]
        data[field.name] = value
    return data
