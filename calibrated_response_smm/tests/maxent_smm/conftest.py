"""Shared helpers: small hand-built constraint sets and the brute-force reference."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from calibrated_response_plugins.constraints import Constraint, ConstraintSet, Domain

sys.path.insert(0, str(Path(__file__).parent))


def binary_domain(name: str) -> Domain:
    return Domain(name=name, kind="binary", bin_edges=[0.0, 0.5, 1.0], values=[0.0, 1.0], lower=0.0, upper=1.0)


def continuous_domain(name: str, lower: float, upper: float, bins: int) -> Domain:
    edges = np.linspace(lower, upper, bins + 1)
    return Domain(name=name, kind="continuous", bin_edges=edges, values=(edges[:-1] + edges[1:]) / 2, lower=lower, upper=upper)


def constraint(cid, scope, feature, target, relation="eq", s2=1e-3) -> Constraint:
    feature = np.asarray(feature, dtype=np.float64)
    return Constraint(
        id=cid, estimate_type="probability", relation=relation, scope=scope, feature=feature, target=target, s2=s2,
        report_numerator=feature, report_denominator=np.ones_like(feature), report_target=target,
    )


@pytest.fixture
def small_binary_problem() -> ConstraintSet:
    return make_small_binary_problem()


def make_small_binary_problem() -> ConstraintSet:
    """Four binary variables: marginals, a conditional, a triple and an inequality."""
    domains = [binary_domain(n) for n in "abcd"]
    one = np.array([0.0, 1.0])
    both = np.outer(one, one)
    cond = both - 0.7 * np.outer(np.ones(2), one)  # P(a | b) = 0.7, centred
    triple = np.einsum("i,j,k->ijk", one, one, one)
    return ConstraintSet(
        domains=domains,
        constraints=[
            constraint("pa", (0,), one, 0.4),
            constraint("pb", (1,), one, 0.6),
            constraint("a_given_b", (0, 1), cond, 0.0),
            constraint("pbc", (1, 2), both, 0.35),
            constraint("pabd", (0, 1, 3), triple, 0.2),
            constraint("pd_cap", (3,), one, 0.3, relation="le"),
        ],
    )


def fit_constraints(problem: ConstraintSet, **options):
    """``(adapted problem, config, fit)`` of the smm engine on a constraint set."""
    from calibrated_response_smm.adapters import graph_from_constraints
    from calibrated_response_smm.config import SMMConfig
    from calibrated_response_smm.training import SMMModel, fit_model

    adapted = graph_from_constraints(problem)
    config = SMMConfig(**options)
    model = SMMModel.build(adapted.graph, adapted.targets, config.num_chains, config.l2_regularization,
                           devices=config.devices)
    return adapted, config, fit_model(model, config)


def assert_matches_brute_force(problem: ConstraintSet, adapted, fit, atol: float) -> None:
    """The fit's constraint means and marginals against the exact maximum-entropy answer."""
    import exact
    from calibrated_response_smm.adapters import constraint_means

    lambdas, means = exact.solve_dual(problem)
    fitted, _ = constraint_means(adapted, fit.table_moments)
    np.testing.assert_allclose(fitted, means, atol=atol)
    reference = exact.marginals(problem, lambdas)
    for domain, p in zip(problem.domains, fit.marginals):
        np.testing.assert_allclose(p, reference[domain.name], atol=atol)
