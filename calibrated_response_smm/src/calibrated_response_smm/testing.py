"""Test helpers of the smm backend: shared graphs and problems, a fit on a constraint set, enumeration.

The backend-neutral builders and the exact oracle are the core's
(:mod:`calibrated_response_plugins.testing`); this module adds what only the
smm engine's tests need, importable from a test module or a helper script run
in its own process (no ``sys.path`` edits).
"""

from __future__ import annotations

import attrs
import numpy as np
from calibrated_response_plugins.constraints import ConstraintSet
from calibrated_response_plugins.testing import (
    binary_domain,
    continuous_domain,
    exact_fit,
    table_constraint,
)

from .graph import FactorGraph, SMMVariable


def graph_joint(graph: FactorGraph) -> np.ndarray:
    """The normalised joint of a ``FactorGraph`` by enumeration (its factor tables are log-potentials)."""
    logits = np.zeros(graph.sizes)
    for factor in graph.factors:
        shape = [1] * graph.n_vars
        for axis, v in enumerate(factor.var_ids):
            shape[v] = factor.table_shape[axis]
        logits = logits + factor.parameters.reshape(shape)
    p = np.exp(logits - logits.max())
    return p / p.sum()


def mixed_graph(seed: int = 0) -> FactorGraph:
    """Categorical variables of 2 and 3 states and a 4-bin continuous one; arity 1 to 3, random tables."""
    rng = np.random.default_rng(seed)
    variables = [
        SMMVariable.categorical("a", 2),
        SMMVariable.categorical("b", 3),
        SMMVariable.bounded_continuous("c", 0.0, 4.0, 4),
        SMMVariable.categorical("d", 2),
        SMMVariable.categorical("e", 3),
    ]
    scopes = [(0,), (1,), (0, 1), (1, 2), (2, 3, 4), (0, 4), (3,)]
    tables = [rng.normal(size=[variables[i].size for i in s]) for s in scopes]
    return FactorGraph.from_scopes(variables, scopes, tables)


def rare_condition_problem() -> ConstraintSet:
    """A conditional whose condition has probability about 0.003 under the fit.

    ``c`` is continuous (10 bins on [0, 10]) and ``E[c] = 0.6`` crowds it into the
    bottom bin, so ``c > 8`` is rare; ``P(a | c > 8) = 0.7`` is still informative.
    """
    domains = [binary_domain("a"), continuous_domain("c", 0.0, 10.0, 10), binary_domain("b")]
    one = np.array([0.0, 1.0])
    given = (np.arange(10) >= 8).astype(float)
    u = (np.arange(10) + 0.5) / 10
    cond = np.outer(one, given) - 0.7 * np.outer(np.ones(2), given)
    ratio = attrs.evolve(table_constraint("a_given_rare", (0, 1), cond, 0.0),
                         estimate_type="conditional_probability", report_numerator=np.outer(one, given),
                         report_denominator=np.outer(np.ones(2), given), report_target=0.7)
    return ConstraintSet(
        domains=domains,
        constraints=[
            table_constraint("pa", (0,), one, 0.4),
            table_constraint("ec", (1,), u, 0.06),
            table_constraint("pb", (2,), one, 0.5),
            table_constraint("pab", (0, 2), np.outer(one, one), 0.3),
            ratio,
        ],
    )


def fit_constraints(problem: ConstraintSet, **options):
    """``(adapted problem, config, fit)`` of the smm engine on a constraint set."""
    from .adapters import graph_from_constraints
    from .config import SMMConfig
    from .training import SMMModel, fit_model

    adapted = graph_from_constraints(problem)
    config = SMMConfig(**options)
    model = SMMModel.build(adapted.graph, adapted.targets, config.num_chains, config.l2_regularization,
                           devices=config.devices, block_moves=config.block_moves)
    return adapted, config, fit_model(model, config)


def assert_matches_brute_force(problem: ConstraintSet, adapted, fit, atol: float) -> None:
    """The fit's constraint means and marginals against the exact maximum-entropy answer."""
    from .adapters import constraint_means

    reference = exact_fit(problem)
    fitted, _ = constraint_means(adapted, fit.table_moments)
    np.testing.assert_allclose(fitted, reference.feature_means, atol=atol)
    for domain, p in zip(problem.domains, fit.marginals):
        np.testing.assert_allclose(p, reference.marginals[domain.name], atol=atol)


def locked_pairs_problem() -> ConstraintSet:
    """Two pairs of binary variables that almost always agree, the pairs weakly tied.

    Single-site Gibbs leaves an agreeing pair only through a state of probability
    ~1e-3, so each chain flips its pair every few hundred sweeps: slow mixing.
    """
    one = np.array([0.0, 1.0])
    agree = np.eye(2)

    def given(p):  # P(second | first) = p, as the centred conditional feature
        return np.outer(one, one) - p * np.outer(one, np.ones(2))

    return ConstraintSet(
        domains=[binary_domain(n) for n in "abcd"],
        constraints=[
            table_constraint("pa", (0,), one, 0.35),
            table_constraint("a_b_agree", (0, 1), agree, 0.998),
            table_constraint("c_d_agree", (2, 3), agree, 0.998),
            table_constraint("c_given_b", (1, 2), given(0.6), 0.0),
        ],
    )
