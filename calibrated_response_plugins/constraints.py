"""The compiled moment-constraint problem every backend fits (``docs/semantics.md``).

A :class:`ConstraintSet` is host-side, validated and backend-neutral: a list of
variable :class:`Domain` objects and a list of :class:`Constraint` objects, each a
feature table ``g_k`` over a small scope of variables with a target ``c_k``,
a relation (``eq``/``le``/``ge``) and a regularisation variance ``s_k^2``.
Every backend minimises the same dual

    log Z(lambda) - sum_k lambda_k c_k + 1/2 sum_k s_k^2 lambda_k^2

with ``lambda_k >= 0`` for ``ge`` and ``lambda_k <= 0`` for ``le``; its
gradient, sign bounds and "held at a bound" test are in :mod:`.dual`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import attrs
import numpy as np

from calibrated_response_plugins import dual

Relation = Literal["eq", "le", "ge"]
VariableKind = Literal["binary", "continuous"]


def frozen_array(value: Any, dtype: Any = np.float64) -> np.ndarray:
    """A read-only copy of ``value`` as a numpy array (for frozen attrs fields)."""
    array = np.array(value, dtype=dtype)
    array.setflags(write=False)
    return array


def frozen_index_array(value: Any) -> np.ndarray:
    """A read-only copy of ``value`` as an index array."""
    return frozen_array(value, np.intp)



@attrs.frozen(eq=False)
class Domain:
    """The discrete states of one variable.

    ``values`` are the state values (0/1 for a binary, bin centres for a
    continuous variable); ``bin_edges`` are the output histogram edges
    (``[0, 0.5, 1]`` for a binary). ``lower``/``upper`` are the domain bounds
    used to rescale expectations to [0, 1].
    """

    name: str
    kind: VariableKind = attrs.field(validator=attrs.validators.in_(("binary", "continuous")))
    bin_edges: np.ndarray = attrs.field(converter=frozen_array)
    values: np.ndarray = attrs.field(converter=frozen_array)
    lower: float
    upper: float

    @values.validator
    def _check_values(self, attribute, value):
        if value.ndim != 1 or value.shape[0] + 1 != self.bin_edges.shape[0]:
            raise ValueError(
                f"variable {self.name!r}: values has shape {value.shape}, "
                f"expected ({self.bin_edges.shape[0] - 1},) to match bin_edges"
            )

    @property
    def n_states(self) -> int:
        return int(self.values.shape[0])

    @property
    def span(self) -> float:
        return float(self.upper - self.lower)

    def rescale(self, x):
        """Map a value of the variable to [0, 1] by its domain."""
        return (np.asarray(x, dtype=np.float64) - self.lower) / self.span



@attrs.frozen(eq=False)
class Constraint:
    """One linear moment constraint ``E[g] (=, <=, >=) target`` over a scope.

    ``feature`` has one axis per scope variable (in ``scope`` order, which is
    ascending variable index), each of that variable's ``n_states``.

    The report fields express the fitted value in the estimate's own terms:
    ``report_offset + report_scale * E[report_numerator] / E[report_denominator]``
    (e.g. ``P(A and C) / P(C)`` for a conditional probability, or a conditional
    mean mapped back to the variable's units); ``report_target`` is the
    elicited number in those terms.
    """

    id: str
    estimate_type: str
    relation: Relation = attrs.field(validator=attrs.validators.in_(("eq", "le", "ge")))
    scope: tuple[int, ...] = attrs.field(converter=tuple)
    feature: np.ndarray = attrs.field(converter=frozen_array)
    target: float
    s2: float
    report_numerator: np.ndarray = attrs.field(converter=frozen_array)
    report_denominator: np.ndarray = attrs.field(converter=frozen_array)
    report_target: float
    report_offset: float = 0.0
    report_scale: float = 1.0

    @scope.validator
    def _check_scope(self, attribute, value):
        if len(value) == 0 or list(value) != sorted(set(value)):
            raise ValueError(f"constraint {self.id!r}: scope {value} must be non-empty, sorted, distinct")

    @feature.validator
    def _check_feature(self, attribute, value):
        if value.ndim != len(self.scope):
            raise ValueError(
                f"constraint {self.id!r}: feature has {value.ndim} axes, scope has {len(self.scope)}"
            )

    @property
    def arity(self) -> int:
        return len(self.scope)

    def reported(self, numerator_mean: float, denominator_mean: float) -> float:
        """The fitted value in the estimate's terms, from the two table means."""
        ratio = numerator_mean / denominator_mean if denominator_mean > 0 else float("nan")
        return float(self.report_offset + self.report_scale * ratio)


@attrs.frozen(eq=False)
class ConstraintSet:
    """Domains, constraints and what the compiler skipped or warned about.

    ``correlations`` are the compiled correlation estimates
    (:class:`~calibrated_response_plugins.correlations.CorrelationConstraint`), the one
    nonlinear kind: backends never see them, the core's outer loop replaces each by a
    linear pair constraint appended after ``constraints`` (see ``correlations.py``).
    """

    domains: tuple[Domain, ...] = attrs.field(converter=tuple)
    constraints: tuple[Constraint, ...] = attrs.field(converter=tuple)
    skipped: tuple[str, ...] = attrs.field(converter=tuple, factory=tuple)
    warnings: tuple[str, ...] = attrs.field(converter=tuple, factory=tuple)
    correlations: tuple[Any, ...] = attrs.field(converter=tuple, factory=tuple)

    @constraints.validator
    def _check_constraints(self, attribute, value):
        for constraint in value:
            for axis, index in enumerate(constraint.scope):
                if not 0 <= index < len(self.domains):
                    raise ValueError(f"constraint {constraint.id!r}: variable index {index} out of range")
                expected = self.domains[index].n_states
                if constraint.feature.shape[axis] != expected:
                    raise ValueError(
                        f"constraint {constraint.id!r}: feature axis {axis} has "
                        f"{constraint.feature.shape[axis]} states, variable "
                        f"{self.domains[index].name!r} has {expected}"
                    )

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.domains]

    @property
    def n_states(self) -> list[int]:
        return [d.n_states for d in self.domains]

    def index_of(self, name: str) -> int:
        for index, domain in enumerate(self.domains):
            if domain.name == name:
                return index
        raise ValueError(f"unknown variable {name!r}; variables are {self.names}")

    @property
    def targets(self) -> np.ndarray:
        return np.array([c.target for c in self.constraints], dtype=np.float64)

    @property
    def s2(self) -> np.ndarray:
        return np.array([c.s2 for c in self.constraints], dtype=np.float64)

    @property
    def relations(self) -> tuple[str, ...]:
        return tuple(c.relation for c in self.constraints)

    def sign_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bound on each multiplier (:func:`calibrated_response_plugins.dual.sign_bounds`)."""
        return dual.sign_bounds(self.relations)

    def lambda_bounds(self) -> list[tuple[float | None, float | None]]:
        """Sign bounds on each multiplier as scipy wants them: ``ge`` -> (0, None), ``le`` -> (None, 0)."""
        return dual.scipy_bounds(self.relations)


@attrs.frozen(eq=False)
class FitResult:
    """What a backend's ``fit`` hook returns.

    ``lambdas`` are the fitted multipliers, one per constraint (input order);
    ``feature_means`` the model's ``E[g_k]``; ``report_means`` an array of shape
    ``(K, 2)`` with the model's ``E[report_numerator]`` and
    ``E[report_denominator]`` for each constraint. ``marginals`` maps each
    variable name to its state probabilities. ``state`` is anything the backend
    wants to keep (its trained model, chains, ...). ``moment_stderr`` is the Monte
    Carlo standard error of the fitted means (the largest over the constraints, report
    units): 0 for an exact backend; a sampling one says how far its means move from
    one fit to the next by noise alone (the correlation loop stops at that scale).
    """

    lambdas: np.ndarray = attrs.field(converter=frozen_array)
    feature_means: np.ndarray = attrs.field(converter=frozen_array)
    report_means: np.ndarray = attrs.field(converter=frozen_array)
    marginals: dict[str, np.ndarray]
    converged: bool
    n_iterations: int
    n_factors: int
    history: dict[str, list] = attrs.field(factory=dict)
    diagnostics: dict[str, Any] = attrs.field(factory=dict)
    warnings: tuple[str, ...] = attrs.field(converter=tuple, factory=tuple)
    state: Any = None
    moment_stderr: float = attrs.field(default=0.0, converter=float)


def connected_components(n_variables: int, scopes: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    """Partition ``range(n_variables)`` into sets linked by shared scopes, ordered by first variable."""
    root = list(range(n_variables))

    def find(variable: int) -> int:
        while root[variable] != variable:
            root[variable] = root[root[variable]]
            variable = root[variable]
        return variable

    for scope in scopes:
        for variable in scope[1:]:
            root[find(variable)] = find(scope[0])
    members: dict[int, list[int]] = {}
    for variable in range(n_variables):
        members.setdefault(find(variable), []).append(variable)
    return sorted((tuple(variables) for variables in members.values()), key=lambda variables: variables[0])
