"""The dense model: constraints grouped by scope, laid out against dense joint arrays.

Variables that no scope links are independent under the maximum-entropy model,
so the joint is the product of one dense array per connected :class:`Component`
(one axis per variable, in variable order). Constraints that share a scope are
stacked into one :class:`ScopeGroup`, so a component's log-joint is a sum of one
broadcast table per distinct scope and each scope's marginal is taken once per
evaluation, however many constraints it carries.

A scope whose constraints all have a zero feature (the correlation loop's first-round
probes) adds nothing to the log-joint, so it links nothing: when its variables lie in
different components it is a *detached* group, whose scope marginal is the product of
the components' marginals on it (they are independent). Only its report tables use it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import numpy as np
from calibrated_response_plugins.constraints import ConstraintSet, connected_components, frozen_array, frozen_index_array


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
    constraints' positions in the :class:`ConstraintSet`. ``axes`` are the
    scope's axes in its component's joint, ``broadcast_shape`` the scope
    table's shape against that joint (1 on other axes) and ``summed_axes`` the
    component axes summed out to get the scope marginal.
    """

    scope: tuple[int, ...] = attrs.field(converter=tuple)
    axes: tuple[int, ...] = attrs.field(converter=tuple)
    constraint_indices: np.ndarray = attrs.field(converter=frozen_index_array)
    features: np.ndarray = attrs.field(converter=frozen_array)
    report_numerators: np.ndarray = attrs.field(converter=frozen_array)
    report_denominators: np.ndarray = attrs.field(converter=frozen_array)
    broadcast_shape: tuple[int, ...] = attrs.field(converter=tuple)
    summed_axes: tuple[int, ...] = attrs.field(converter=tuple)

    @property
    def arity(self) -> int:
        return len(self.scope)


@attrs.frozen(eq=False)
class Component:
    """Variables linked through shared scopes, with the scope groups over them.

    Under the maximum-entropy model, variables in different components are
    independent, so the joint is the product of the components' joints and
    each is enumerated on its own. ``variables`` are ascending variable
    indices, one axis each of the component's joint of shape ``shape``.
    """

    variables: tuple[int, ...] = attrs.field(converter=tuple)
    shape: tuple[int, ...] = attrs.field(converter=tuple)
    groups: tuple[ScopeGroup, ...] = attrs.field(converter=tuple)

    @property
    def n_states(self) -> int:
        return count_joint_states(self.shape)


@attrs.frozen(eq=False)
class DenseModel:
    """What ``compile_constraints`` returns: the problem laid out as independent dense components."""

    problem: ConstraintSet
    components: tuple[Component, ...] = attrs.field(converter=tuple)
    #: zero-feature groups whose scope spans several components (their axes are the scope's own).
    detached: tuple[ScopeGroup, ...] = attrs.field(converter=tuple)
    targets: np.ndarray = attrs.field(converter=frozen_array)
    s2: np.ndarray = attrs.field(converter=frozen_array)
    lower_bounds: np.ndarray = attrs.field(converter=frozen_array)
    upper_bounds: np.ndarray = attrs.field(converter=frozen_array)

    @property
    def groups(self) -> tuple[ScopeGroup, ...]:
        """Every scope group inside a component, component by component (not the detached ones)."""
        return tuple(group for component in self.components for group in component.groups)

    @property
    def n_constraints(self) -> int:
        return int(self.targets.shape[0])

    @property
    def n_joint_states(self) -> int:
        return count_joint_states(self.problem.n_states)

    @property
    def n_enumerated_states(self) -> int:
        """Cells actually enumerated: the sum of the components' joint sizes."""
        return sum(component.n_states for component in self.components)


def broadcast_shape_of(axes: Sequence[int], shape: Sequence[int]) -> tuple[int, ...]:
    """Shape of a table over ``axes`` placed against an array of ``shape``: 1 on the other axes."""
    kept = set(axes)
    return tuple(size if axis in kept else 1 for axis, size in enumerate(shape))


def axes_outside(axes: Sequence[int], n_axes: int) -> tuple[int, ...]:
    """The axes among ``range(n_axes)`` not in ``axes``."""
    kept = set(axes)
    return tuple(axis for axis in range(n_axes) if axis not in kept)


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


def build_scope_group(
    problem: ConstraintSet, scope: tuple[int, ...], indices: list[int], variables: tuple[int, ...]
) -> ScopeGroup:
    """Stack the constraints at ``indices`` (all over ``scope``) into one group of the component ``variables``."""
    shape = tuple(problem.n_states[variable] for variable in variables)
    axes = tuple(variables.index(variable) for variable in scope)
    constraints = [problem.constraints[i] for i in indices]
    feature_shape = constraints[0].feature.shape
    return ScopeGroup(
        scope=scope,
        axes=axes,
        constraint_indices=indices,
        features=np.stack([c.feature for c in constraints]),
        report_numerators=np.stack(
            [_report_table(c.report_numerator, feature_shape, c.id, "report_numerator") for c in constraints]
        ),
        report_denominators=np.stack(
            [_report_table(c.report_denominator, feature_shape, c.id, "report_denominator") for c in constraints]
        ),
        broadcast_shape=broadcast_shape_of(axes, shape),
        summed_axes=axes_outside(axes, len(shape)),
    )


def has_zero_features(problem: ConstraintSet, indices: list[int]) -> bool:
    """Whether every constraint at ``indices`` has an all-zero feature (it cannot link its scope)."""
    return all(not np.any(problem.constraints[i].feature) for i in indices)


def build_detached_group(problem: ConstraintSet, scope: tuple[int, ...], indices: list[int]) -> ScopeGroup:
    """A zero-feature group laid out against its own scope (axes ``0..arity-1``)."""
    return build_scope_group(problem, scope, indices, scope)


def build_component(
    problem: ConstraintSet, variables: tuple[int, ...], scopes: dict[tuple[int, ...], list[int]]
) -> Component:
    """The component over ``variables`` with the scope groups that lie inside it."""
    inside = set(variables)
    return Component(
        variables=variables,
        shape=tuple(problem.n_states[variable] for variable in variables),
        groups=[
            build_scope_group(problem, scope, indices, variables)
            for scope, indices in scopes.items()
            if inside.issuperset(scope)
        ],
    )


def build_dense_model(problem: ConstraintSet) -> DenseModel:
    """Split ``problem`` into independent components, group constraints by scope, collect targets and bounds.

    Only scopes with a nonzero feature link variables; a zero-feature scope across
    components becomes a detached group.
    """
    lower_bounds, upper_bounds = problem.sign_bounds()
    scopes = constraints_by_scope(problem)
    linking = [scope for scope, indices in scopes.items() if not has_zero_features(problem, indices)]
    partition = connected_components(len(problem.domains), linking)
    component_of = {variable: k for k, variables in enumerate(partition) for variable in variables}
    return DenseModel(
        problem=problem,
        components=[build_component(problem, variables, scopes) for variables in partition],
        detached=[
            build_detached_group(problem, scope, indices)
            for scope, indices in scopes.items()
            if len({component_of[variable] for variable in scope}) > 1
        ],
        targets=problem.targets,
        s2=problem.s2,
        lower_bounds=lower_bounds,
        upper_bounds=upper_bounds,
    )
