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


def _trap_depth(theta: np.ndarray) -> float:
    """Brute force: each cell's drop to its better two-move route to the best cell, the deepest one."""
    a_star, b_star = np.unravel_index(np.argmax(theta), theta.shape)
    depth = 0.0
    for a, b in np.ndindex(*theta.shape):
        depth = max(depth, theta[a, b] - max(theta[a_star, b], theta[a, b_star]))
    return depth


def _span(theta: np.ndarray) -> float:
    interaction = theta - theta.mean(axis=1, keepdims=True) - theta.mean(axis=0, keepdims=True) + theta.mean()
    return float(interaction.max() - interaction.min())


def test_couplings_are_the_interaction_span():
    graph = coupled_graph(7.0)
    layout = build_layout(graph)
    plan = build_plan(graph, layout, 16).device()
    spans = np.asarray(blocks.couplings(plan.blocks, _flat(layout, graph)), np.float64)
    expected = [_span(f.parameters) for f in graph.factors if len(f.var_ids) == 2]
    assert expected[0] > blocks.COUPLING > max(expected[1:])  # the strong pair, and two weak ones
    # float32 sums of unit-scale entries
    np.testing.assert_allclose(spans, expected, rtol=1e-5, atol=1e-5)


def test_the_span_bounds_the_trap_depth_whatever_the_main_effects():
    rng = np.random.default_rng(4)
    for shape in [(2, 2), (3, 5), (21, 2), (6, 6)]:
        interaction = rng.normal(scale=3.0, size=shape)
        for _ in range(20):  # the rest of a chain moves the pair's main effects
            theta = interaction + rng.normal(scale=5.0, size=(shape[0], 1)) + rng.normal(scale=5.0, size=(1, shape[1]))
            assert _trap_depth(theta) <= _span(interaction) + 1e-9


@pytest.mark.parametrize("J", [4.4, 13.8])
def test_a_locked_binary_pair_is_a_trap_as_deep_as_its_span(J):
    variables = [SMMVariable.categorical("a", 2), SMMVariable.categorical("b", 2)]
    table = np.array([[J / 4, -J / 4], [-J / 4, J / 4]]) + np.array([[0.0], [0.1]])  # a main effect: (1, 1) the best
    graph = FactorGraph.from_scopes(variables, [(0, 1)], [table])
    layout = build_layout(graph)
    plan = build_plan(graph, layout, 16).device()
    span = float(blocks.couplings(plan.blocks, _flat(layout, graph))[0])
    # the trap (0, 0) lies J/2 above its exits, less the main effect's 0.1
    assert span == pytest.approx(J / 2, abs=1e-5) and _trap_depth(table) == pytest.approx(J / 2 - 0.1)
    assert (span > blocks.COUPLING) == (J > 2 * blocks.COUPLING)


def test_a_block_move_draws_the_pair_from_its_exact_joint_conditional():
    graph = coupled_graph(7.0)
    layout = build_layout(graph)
    plan = build_plan(graph, layout, CHAINS).device()
    x = random_states(plan, jnp.asarray(seed_words(1)), CHAINS).at[2].set(3)  # x2 = 3 in every chain
    flat = _flat(layout, graph)
    moved = blocks.block_moves(plan.blocks, flat, blocks.couplings(plan.blocks, flat), x,
                               jnp.asarray(seed_words(2)), jnp.uint32(0), whole_span(CHAINS))
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
    flat = _flat(layout, graph)
    moved = blocks.block_moves(plan.blocks, flat, blocks.couplings(plan.blocks, flat), x,
                               jnp.asarray(seed_words(2)), jnp.uint32(0), whole_span(64))
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
