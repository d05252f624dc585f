"""Bridge from the core's compiled :class:`ConstraintSet` to an SMM graph and targets.

Every estimate arrives compiled (docs/semantics.md): a feature table over a sorted
scope, a target, a relation and ``s_k^2``. Constraints sharing a scope become one
factor (``theta_f = sum_{k in f} lambda_k G_k``); multiplier ``k`` stays with
constraint ``k`` in input order. What the compiler skipped stays in ``skipped``.
"""

from __future__ import annotations

import attrs
import numpy as np

from .graph import Factor, FactorGraph, SMMVariable
from .targets import MomentTarget, MomentTargets


@attrs.frozen(eq=False)
class AdaptedProblem:
    """The graph, its moment targets, and the constraint set they came from."""

    graph: FactorGraph
    targets: MomentTargets
    constraints: object  # the core ConstraintSet
    factor_of: tuple[int, ...]  # factor id per constraint

    @property
    def skipped(self) -> tuple[str, ...]:
        return tuple(self.constraints.skipped)


def variable_from_domain(domain) -> SMMVariable:
    """Binary -> categorical(2); continuous -> bounded_continuous with the domain's bins."""
    if domain.kind == "binary":
        return SMMVariable.categorical(domain.name, domain.n_states)
    edges = np.asarray(domain.bin_edges)
    return SMMVariable.bounded_continuous(domain.name, float(edges[0]), float(edges[-1]), domain.n_states)


def ratio_denominator(constraint) -> np.ndarray | None:
    """The report denominator table of a conditional, None where the report is a plain mean."""
    denominator = np.asarray(constraint.report_denominator, np.float64)
    return None if np.all(denominator == 1.0) else denominator


def graph_from_constraints(constraint_set) -> AdaptedProblem:
    """One factor per distinct scope (first-appearance order), one target per constraint."""
    variables = [variable_from_domain(d) for d in constraint_set.domains]
    sizes = [v.size for v in variables]
    scopes: dict[tuple[int, ...], int] = {}
    factor_of = []
    for constraint in constraint_set.constraints:
        scope = tuple(int(i) for i in constraint.scope)
        factor_of.append(scopes.setdefault(scope, len(scopes)))
    factors = [
        Factor(id=fid, var_ids=scope, table_shape=tuple(sizes[i] for i in scope), parameters=np.zeros([sizes[i] for i in scope]))
        for scope, fid in scopes.items()
    ]
    graph = FactorGraph(variables=variables, factors=factors)
    targets = MomentTargets(
        [
            MomentTarget(
                fid, np.asarray(c.feature, np.float64), float(c.target), float(c.s2), c.relation, ratio_denominator(c)
            )
            for c, fid in zip(constraint_set.constraints, factor_of)
        ]
    )
    return AdaptedProblem(graph, targets, constraint_set, tuple(factor_of))


def scope_mean(table_moment: np.ndarray, table: np.ndarray) -> float:
    """``E[table(x_f)]`` from the factor's cell probabilities."""
    return float(np.sum(np.asarray(table_moment) * np.asarray(table)))


def constraint_means(problem: AdaptedProblem, table_moments) -> tuple[np.ndarray, np.ndarray]:
    """``E[g_k]`` and ``[E[numerator_k], E[denominator_k]]`` for every constraint."""
    features, report = [], []
    for constraint, fid in zip(problem.constraints.constraints, problem.factor_of):
        m = table_moments[fid]
        features.append(scope_mean(m, constraint.feature))
        report.append([scope_mean(m, constraint.report_numerator), scope_mean(m, constraint.report_denominator)])
    return np.array(features, dtype=np.float64), np.array(report, dtype=np.float64).reshape(-1, 2)
