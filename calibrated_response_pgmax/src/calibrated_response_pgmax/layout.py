"""Host-side factor layout: one factor per distinct constraint scope, plus unary factors.

Everything here is NumPy and validated once per problem. Configurations of a
factor are enumerated in C order over its scope (the flattened feature table),
and factors are concatenated in :attr:`FactorLayout.scopes` order; this
"layout order" is translated to PGMax's flat log-potential order by
:mod:`calibrated_response_pgmax.graph`.
"""

from __future__ import annotations

import attrs
import numpy as np

from calibrated_response_plugins.constraints import Constraint, ConstraintSet, frozen_array


def _int_array(value) -> np.ndarray:
    return frozen_array(value, np.int64)


def factor_scopes(problem: ConstraintSet) -> tuple[tuple[int, ...], ...]:
    """Distinct constraint scopes in first-use order, then a unary scope for each uncovered variable."""
    scopes: dict[tuple[int, ...], None] = {}
    for constraint in problem.constraints:
        scopes.setdefault(tuple(constraint.scope), None)
    covered = {index for scope in scopes for index in scope}
    for index in range(len(problem.domains)):
        if index not in covered:
            scopes.setdefault((index,), None)
    return tuple(scopes)


def constraint_table(constraint: Constraint, table: np.ndarray, name: str) -> np.ndarray:
    """``table`` broadcast to the constraint's feature shape, flattened in C order."""
    try:
        full = np.broadcast_to(np.asarray(table, dtype=np.float64), constraint.feature.shape)
    except ValueError as error:
        raise ValueError(
            f"constraint {constraint.id!r}: {name} has shape {np.shape(table)}, "
            f"expected one broadcastable to the feature shape {constraint.feature.shape}"
        ) from error
    return full.reshape(-1)


@attrs.frozen(eq=False)
class FactorLayout:
    """Where each constraint's feature table sits among all factor configurations.

    ``config_offsets[f]:config_offsets[f + 1]`` are factor ``f``'s configurations;
    ``factor_of_config[j]`` is the factor of configuration ``j``.
    ``entry_constraint``/``entry_config``/``entry_value`` list the non-zero
    entries of every feature table (constraint index, configuration, ``g_k``),
    so that ``theta = scatter(lambda[entry_constraint] * entry_value)`` and
    ``E[g] = segment_sum(belief[entry_config] * entry_value)``.
    """

    scopes: tuple[tuple[int, ...], ...]
    shapes: tuple[tuple[int, ...], ...]
    config_offsets: np.ndarray = attrs.field(converter=_int_array)
    factor_of_constraint: np.ndarray = attrs.field(converter=_int_array)
    entry_constraint: np.ndarray = attrs.field(converter=_int_array)
    entry_config: np.ndarray = attrs.field(converter=_int_array)
    entry_value: np.ndarray = attrs.field(converter=frozen_array)

    @property
    def n_factors(self) -> int:
        return len(self.scopes)

    @property
    def n_configs(self) -> int:
        return int(self.config_offsets[-1])

    @property
    def factor_of_config(self) -> np.ndarray:
        sizes = np.diff(self.config_offsets)
        return np.repeat(np.arange(self.n_factors), sizes)

    def factor_slice(self, factor: int) -> slice:
        return slice(int(self.config_offsets[factor]), int(self.config_offsets[factor + 1]))

    def table_means(self, beliefs: np.ndarray, problem: ConstraintSet, attribute: str) -> np.ndarray:
        """``E_b[table]`` for one table attribute (``feature``, ``report_numerator``, ...) of every constraint."""
        means = np.zeros(len(problem.constraints))
        for k, constraint in enumerate(problem.constraints):
            table = constraint_table(constraint, getattr(constraint, attribute), attribute)
            means[k] = float(beliefs[self.factor_slice(int(self.factor_of_constraint[k]))] @ table)
        return means


def build_layout(problem: ConstraintSet) -> FactorLayout:
    """Lay out one factor per distinct scope and index every feature entry."""
    scopes = factor_scopes(problem)
    shapes = tuple(tuple(problem.domains[i].n_states for i in scope) for scope in scopes)
    sizes = [int(np.prod(shape)) for shape in shapes]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    factor_index = {scope: f for f, scope in enumerate(scopes)}

    factor_of_constraint, entry_constraint, entry_config, entry_value = [], [], [], []
    for k, constraint in enumerate(problem.constraints):
        f = factor_index[tuple(constraint.scope)]
        factor_of_constraint.append(f)
        flat = constraint.feature.reshape(-1)
        (nonzero,) = np.nonzero(flat)
        entry_constraint.append(np.full(nonzero.shape, k))
        entry_config.append(offsets[f] + nonzero)
        entry_value.append(flat[nonzero])

    def joined(parts, dtype):
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    return FactorLayout(
        scopes=scopes,
        shapes=shapes,
        config_offsets=offsets,
        factor_of_constraint=np.asarray(factor_of_constraint, dtype=np.int64),
        entry_constraint=joined(entry_constraint, np.int64),
        entry_config=joined(entry_config, np.int64),
        entry_value=joined(entry_value, np.float64),
    )


def is_tree(scopes, n_variables: int) -> bool:
    """Whether the factor graph (variables and factors, one edge per scope member) has no cycle.

    On such a graph (a forest) sum-product BP is exact.
    """
    parent = list(range(n_variables + len(scopes)))

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for f, scope in enumerate(scopes):
        for variable in scope:
            a, b = root(n_variables + f), root(variable)
            if a == b:
                return False
            parent[a] = b
    return True
