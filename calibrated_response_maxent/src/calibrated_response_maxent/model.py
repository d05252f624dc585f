"""The dense model: constraints grouped by scope, laid out against the joint array.

The joint distribution is an array with one axis per variable (in domain order).
Constraints that share a scope are stacked into one :class:`ScopeGroup`, so the
log-joint is a sum of one broadcast table per distinct scope and each scope's
marginal is taken once per evaluation, however many constraints it carries.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import numpy as np
from calibrated_response_plugins.constraints import ConstraintSet


def _frozen_array(value) -> np.ndarray:
    array = np.array(value, dtype=np.float64)
    array.setflags(write=False)
    return array


def _frozen_index_array(value) -> np.ndarray:
    array = np.array(value, dtype=np.intp)
    array.setflags(write=False)
    return array


def count_joint_states(n_states: Sequence[int]) -> int:
    """Number of cells in the joint, as an exact Python integer."""
    return math.prod(int(n) for n in n_states)


def check_joint_size(n_states: Sequence[int], max_states: int) -> int:
    """Return the joint's size, or raise ``ValueError`` if it exceeds ``max_states``."""
    joint_states = count_joint_states(n_states)
    if joint_states > max_states:
        raise ValueError(
            f"the maxent backend enumerates the joint distribution, and this problem has "
            f"{joint_states:,} joint states ({' x '.join(str(int(n)) for n in n_states)}), "
            f"more than max_states={max_states:,}. Use backend=\"smm\" for problems this large, "
            f"or fewer variables or bins (max_bins)."
        )
    return joint_states


@attrs.frozen(eq=False)
class ScopeGroup:
    """All constraints over one scope, stacked along a leading constraint axis.

    ``features``, ``report_numerators`` and ``report_denominators`` have shape
    ``(n_constraints, *scope_shape)``; ``constraint_indices`` are the
    constraints' positions in the :class:`ConstraintSet`. ``broadcast_shape`` is
    the scope table's shape against the joint (1 on other axes) and
    ``summed_axes`` the joint axes summed out to get the scope marginal.
    """

    scope: tuple[int, ...] = attrs.field(converter=tuple)
    constraint_indices: np.ndarray = attrs.field(converter=_frozen_index_array)
    features: np.ndarray = attrs.field(converter=_frozen_array)
    report_numerators: np.ndarray = attrs.field(converter=_frozen_array)
    report_denominators: np.ndarray = attrs.field(converter=_frozen_array)
    broadcast_shape: tuple[int, ...] = attrs.field(converter=tuple)
    summed_axes: tuple[int, ...] = attrs.field(converter=tuple)

    @property
    def arity(self) -> int:
        return len(self.scope)


@attrs.frozen(eq=False)
class DenseModel:
    """What ``compile_constraints`` returns: the problem plus its dense layout."""

    problem: ConstraintSet
    joint_shape: tuple[int, ...] = attrs.field(converter=tuple)
    groups: tuple[ScopeGroup, ...] = attrs.field(converter=tuple)
    targets: np.ndarray = attrs.field(converter=_frozen_array)
    s2: np.ndarray = attrs.field(converter=_frozen_array)
    lower_bounds: np.ndarray = attrs.field(converter=_frozen_array)
    upper_bounds: np.ndarray = attrs.field(converter=_frozen_array)

    @property
    def n_constraints(self) -> int:
        return int(self.targets.shape[0])

    @property
    def n_joint_states(self) -> int:
        return count_joint_states(self.joint_shape)


def broadcast_shape_of(scope: Sequence[int], joint_shape: Sequence[int]) -> tuple[int, ...]:
    """Shape of a scope table placed against the joint: its sizes on scope axes, 1 elsewhere."""
    in_scope = set(scope)
    return tuple(size if axis in in_scope else 1 for axis, size in enumerate(joint_shape))


def axes_outside(scope: Sequence[int], n_axes: int) -> tuple[int, ...]:
    """The joint axes not in ``scope``."""
    in_scope = set(scope)
    return tuple(axis for axis in range(n_axes) if axis not in in_scope)


def constraints_by_scope(problem: ConstraintSet) -> dict[tuple[int, ...], list[int]]:
    """Constraint positions keyed by scope, scopes in order of first appearance."""
    grouped: dict[tuple[int, ...], list[int]] = {}
    for index, constraint in enumerate(problem.constraints):
        grouped.setdefault(tuple(constraint.scope), []).append(index)
    return grouped


def _report_table(table: np.ndarray, feature_shape: tuple[int, ...], constraint_id: str, field: str) -> np.ndarray:
    """A report table over the constraint's scope (a constant broadcasts to it)."""
    try:
        return np.broadcast_to(table, feature_shape)
    except ValueError:
        raise ValueError(
            f"constraint {constraint_id!r}: {field} has shape {table.shape}, "
            f"expected the feature's shape {feature_shape}"
        ) from None


def build_scope_group(problem: ConstraintSet, scope: tuple[int, ...], indices: list[int]) -> ScopeGroup:
    """Stack the constraints at ``indices`` (all over ``scope``) into one group."""
    joint_shape = tuple(problem.n_states)
    constraints = [problem.constraints[i] for i in indices]
    feature_shape = constraints[0].feature.shape
    return ScopeGroup(
        scope=scope,
        constraint_indices=indices,
        features=np.stack([c.feature for c in constraints]),
        report_numerators=np.stack(
            [_report_table(c.report_numerator, feature_shape, c.id, "report_numerator") for c in constraints]
        ),
        report_denominators=np.stack(
            [_report_table(c.report_denominator, feature_shape, c.id, "report_denominator") for c in constraints]
        ),
        broadcast_shape=broadcast_shape_of(scope, joint_shape),
        summed_axes=axes_outside(scope, len(joint_shape)),
    )


def build_dense_model(problem: ConstraintSet) -> DenseModel:
    """Group ``problem``'s constraints by scope and collect targets, variances and bounds."""
    bounds = problem.lambda_bounds()
    groups = [build_scope_group(problem, scope, indices) for scope, indices in constraints_by_scope(problem).items()]
    return DenseModel(
        problem=problem,
        joint_shape=tuple(problem.n_states),
        groups=groups,
        targets=problem.targets,
        s2=problem.s2,
        lower_bounds=[-np.inf if low is None else low for low, _ in bounds],
        upper_bounds=[np.inf if high is None else high for _, high in bounds],
    )
