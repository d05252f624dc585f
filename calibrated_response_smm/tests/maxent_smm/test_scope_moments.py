"""The scope-wise Rao-Blackwellised estimator against brute-force enumeration."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from calibrated_response_smm.adapters import constraint_means, graph_from_constraints
from calibrated_response_smm.config import SMMConfig
from calibrated_response_smm.features import build_layout, graph_tables
from calibrated_response_smm.graph import FactorGraph, SMMVariable
from calibrated_response_smm.mcmc.plan import build_plan
from calibrated_response_smm.mcmc.stream import seed_words
from calibrated_response_smm.mcmc.sweep import make_rows, random_states, run_sweeps
from calibrated_response_smm.scope_moments import build_scope_plan, cell_log_probabilities, flat_tables, scope_cell_log_means
from calibrated_response_smm.training import SMMModel, fit_model
from calibrated_response_plugins.testing import exact_joint, scope_mean
from calibrated_response_smm.testing import graph_joint, rare_condition_problem


def mixed_graph(seed=0):
    """Five variables of 2 to 4 states; unary, pairwise and triple factors on overlapping scopes."""
    rng = np.random.default_rng(seed)
    variables = [SMMVariable.categorical(f"x{i}", s) for i, s in enumerate([2, 3, 2, 4, 2])]
    scopes = [(0,), (2,), (0, 1), (1, 2), (1, 3), (0, 2, 4), (2, 3, 4), (3, 4)]
    tables = [rng.normal(scale=1.0, size=[variables[v].size for v in s]) for s in scopes]
    return FactorGraph.from_scopes(variables, scopes, tables)


def scope_conditional(joint: np.ndarray, scope, state) -> np.ndarray:
    """p(x_scope | x_rest = state_rest) by slicing the joint."""
    index = tuple(slice(None) if v in scope else int(state[v]) for v in range(joint.ndim))
    table = joint[index]
    return table / table.sum()


def test_cell_probabilities_are_the_exact_scope_conditionals():
    graph = mixed_graph()
    layout = build_layout(graph)
    host = build_scope_plan(graph, layout, range(len(graph.factors)))
    plan = build_plan(graph, layout, 16).device()
    x = random_states(plan, jnp.asarray(seed_words(5)), 16)
    flat = flat_tables(tuple(jnp.asarray(t) for t in graph_tables(layout, graph)))
    log_p = np.asarray(cell_log_probabilities(host.device(), flat, x), np.float64)
    joint = graph_joint(graph)
    states = np.asarray(x)[: graph.n_vars].T
    for chain, state in enumerate(states):
        per_factor = host.tables(log_p[:, chain])
        for f in graph.factors:
            # float32 logits of a few unit-scale terms: agreement to ~1e-6
            np.testing.assert_allclose(per_factor[f.id], scope_conditional(joint, f.var_ids, state), atol=1e-5)


def test_chain_average_matches_the_table_marginals():
    graph = mixed_graph(1)
    layout = build_layout(graph)
    host = build_scope_plan(graph, layout, range(len(graph.factors)))
    chains = 2048
    plan = build_plan(graph, layout, chains).device()
    theta = tuple(jnp.asarray(t) for t in graph_tables(layout, graph))
    rows = make_rows(plan, layout.shape, theta)
    flat = flat_tables(theta)
    seed = jnp.asarray(seed_words(3))

    @jax.jit
    def run(x):
        x, _ = run_sweeps(plan, rows, x, seed, jnp.uint32(0), None, 20, accumulate=False)
        return scope_cell_log_means(host.device(), flat, x)

    means = host.tables(np.asarray(run(random_states(plan, seed, chains)), np.float64))
    joint = graph_joint(graph)
    for f in graph.factors:
        others = tuple(v for v in range(graph.n_vars) if v not in f.var_ids)
        # One Rao-Blackwellised draw from each of 2048 independent chains after 20 sweeps
        # (well mixed at these coupling strengths): a cell's standard error is below
        # sqrt(0.25 / 2048) = 0.011 and in practice several times smaller; 0.02 is a
        # loose bound that still catches any indexing error (those are O(0.1)).
        np.testing.assert_allclose(means[f.id], joint.sum(axis=others), atol=0.02)


@pytest.mark.parametrize("seed", [0, 1])
def test_rare_condition_ratio_is_precise(seed):
    problem = rare_condition_problem()
    adapted = graph_from_constraints(problem)
    config = SMMConfig(seed=seed)
    model = SMMModel.build(adapted.graph, adapted.targets, config.num_chains, config.l2_regularization)
    fit = fit_model(model, config)
    assert fit.diagnostics["scope_factors"] == 1
    _, report = constraint_means(adapted, fit.table_moments)
    # the reference is the exact ratio at the fitted multipliers: this isolates the estimator
    joint = exact_joint(problem, fit.params)
    ratio = problem.constraints[4]
    numerator = scope_mean(joint, ratio.report_numerator, ratio.scope)
    denominator = scope_mean(joint, ratio.report_denominator, ratio.scope)
    assert denominator < 0.01
    # P(C) ~ 3e-3: the pivot estimator sees ~0.3% of 2048 chains x 60 sweeps in C, a ratio
    # error of several 1e-2. Scope-wise, every chain contributes q(a, c | b), smooth in b,
    # so the relative error of each mean is ~1e-3 and their ratio is good to ~1e-3; 0.01
    # leaves a wide margin.
    assert abs(report[4, 0] / report[4, 1] - numerator / denominator) < 0.01
    assert abs(report[4, 1] / denominator - 1.0) < 0.05


def test_a_nearly_impossible_condition_keeps_a_finite_ratio():
    """P(C) ~ 1e-44 is below float32's range; the log-domain means still give P(A | C)."""
    variables = [SMMVariable.categorical("a", 2), SMMVariable.categorical("c", 3)]
    tables = [np.array([0.0, 0.0, -100.0]), np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.8]])]
    graph = FactorGraph.from_scopes(variables, [(1,), (0, 1)], tables)
    layout = build_layout(graph)
    host = build_scope_plan(graph, layout, [1])
    plan = build_plan(graph, layout, 8).device()
    x = random_states(plan, jnp.asarray(seed_words(0)), 8)
    flat = flat_tables(tuple(jnp.asarray(t) for t in graph_tables(layout, graph)))
    table = host.tables(np.asarray(scope_cell_log_means(host.device(), flat, x)))[1]
    assert 0.0 < table[:, 2].sum() < 1e-40
    # exact: P(a = 1 | c = 2) = e^0.8 / (1 + e^0.8); float32 logits give ~1e-6 relative error
    np.testing.assert_allclose(table[1, 2] / table[:, 2].sum(), np.exp(0.8) / (1 + np.exp(0.8)), rtol=1e-4)
