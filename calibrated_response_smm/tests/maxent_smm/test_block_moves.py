"""Block moves over pairwise scopes: exact joint conditionals, and mixing where single-site Gibbs cannot."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from calibrated_response_smm.features import build_layout, graph_tables
from calibrated_response_smm.graph import FactorGraph, SMMVariable
from calibrated_response_smm.mcmc import blocks
from calibrated_response_smm.mcmc.plan import build_plan
from calibrated_response_smm.mcmc.stream import seed_words, whole_span
from calibrated_response_smm.mcmc.sweep import random_states
from calibrated_response_smm.scope_moments import flat_tables
from calibrated_response_smm.testing import assert_matches_brute_force, fit_constraints, graph_joint, locked_pairs_problem

CHAINS = 1 << 14


def coupled_graph(strength: float) -> FactorGraph:
    """Three variables (3, 2 and 4 states): a pair (0, 1) of interaction ``strength``, both tied to 2."""
    rng = np.random.default_rng(0)
    variables = [SMMVariable.categorical(f"x{i}", s) for i, s in enumerate([3, 2, 4])]
    pair = np.zeros((3, 2))
    pair[0, 0] = pair[2, 1] = strength  # two far-apart modes of (x0, x1)
    scopes = [(0,), (0, 1), (1, 2), (0, 2)]
    tables = [rng.normal(size=3), pair, 0.3 * rng.normal(size=(2, 4)), 0.3 * rng.normal(size=(3, 4))]
    return FactorGraph.from_scopes(variables, scopes, tables)


def _flat(layout, graph):
    return flat_tables(tuple(jnp.asarray(t) for t in graph_tables(layout, graph)))


def test_couplings_measure_the_interaction_not_the_main_effects():
    graph = coupled_graph(7.0)
    layout = build_layout(graph)
    plan = build_plan(graph, layout, 16).device()
    spans = np.asarray(blocks.couplings(plan.blocks, _flat(layout, graph)), np.float64)
    expected = []
    for f in graph.factors:
        if len(f.var_ids) == 2:
            t = f.parameters
            interaction = t - t.mean(axis=1, keepdims=True) - t.mean(axis=0, keepdims=True) + t.mean()
            expected.append(interaction.max() - interaction.min())
    # float32 sums of unit-scale entries
    np.testing.assert_allclose(spans, expected, rtol=1e-5, atol=1e-5)


def test_a_block_move_draws_the_pair_from_its_exact_joint_conditional():
    graph = coupled_graph(7.0)
    layout = build_layout(graph)
    plan = build_plan(graph, layout, CHAINS).device()
    x = random_states(plan, jnp.asarray(seed_words(1)), CHAINS).at[2].set(3)  # x2 = 3 in every chain
    moved = blocks.block_moves(plan.blocks, _flat(layout, graph), x, jnp.asarray(seed_words(2)), jnp.uint32(0),
                               whole_span(CHAINS))
    moved = np.asarray(moved)
    assert np.all(moved[2] == 3)  # the third variable is not in the moved block (0, 1)
    joint = graph_joint(graph)[:, :, 3]
    expected = joint / joint.sum()
    counts = np.zeros((3, 2))
    np.add.at(counts, (moved[0], moved[1]), 1.0)
    # 2^14 independent draws: a cell's standard error is at most sqrt(0.25 / 2^14) = 0.004;
    # 0.02 is five of them. The weak blocks (1, 2) and (0, 2) (under COUPLING) did not move.
    np.testing.assert_allclose(counts / CHAINS, expected, atol=0.02)


def test_weak_pairs_do_not_move():
    graph = coupled_graph(1.0)  # every interaction under COUPLING
    layout = build_layout(graph)
    plan = build_plan(graph, layout, 64).device()
    x = random_states(plan, jnp.asarray(seed_words(1)), 64)
    moved = blocks.block_moves(plan.blocks, _flat(layout, graph), x, jnp.asarray(seed_words(2)), jnp.uint32(0),
                               whole_span(64))
    np.testing.assert_array_equal(np.asarray(moved), np.asarray(x))


def test_graphs_with_many_pairs_get_no_blocks(monkeypatch):
    graph = coupled_graph(7.0)
    layout = build_layout(graph)
    assert build_plan(graph, layout, 16).blocks is not None
    assert build_plan(graph, layout, 16, block_moves=False).blocks is None
    monkeypatch.setattr(blocks, "MAX_BLOCKS", 1)
    assert build_plan(graph, layout, 16).blocks is None


@pytest.mark.parametrize("seed", [0, 1])
def test_block_moves_mix_locked_pairs(seed):
    """The locked pairs (an interaction of ~12 nats) need up to 960 final sweeps without block moves."""
    problem = locked_pairs_problem()
    adapted, config, fit = fit_constraints(problem, num_chains=1024, seed=seed)
    assert fit.converged
    assert fit.diagnostics["final_sweeps"] <= 2 * config.final_sweeps
    # the final standard error is held to 3e-3; 0.015 is five of them
    assert_matches_brute_force(problem, adapted, fit, atol=0.015)
