"""The chromatic Gibbs sweep samples the model exactly; energies and buffers agree with it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from calibrated_response_smm.energy import energy, local_energy_delta
from calibrated_response_smm.features import build_layout, graph_tables, moment_rows_to_tables, unpad_tables
from calibrated_response_smm.graph import FactorGraph, SMMVariable, greedy_colouring
from calibrated_response_smm.mcmc.buffer import PersistentBuffer
from calibrated_response_smm.mcmc.plan import balanced_pivots, build_plan
from calibrated_response_smm.mcmc.stream import seed_words
from calibrated_response_smm.mcmc.sweep import make_rows, random_states, run_sweeps, zero_accumulators
from calibrated_response_smm.testing import graph_joint, mixed_graph


def binary_graph(seed=1):
    """All-binary model: the sweep takes the logit-difference kernel."""
    rng = np.random.default_rng(seed)
    variables = [SMMVariable.categorical(name, 2) for name in "abcdef"]
    scopes = [(0,), (2,), (0, 1), (1, 2), (2, 3, 4), (0, 4), (4, 5), (3, 5)]
    tables = [rng.normal(size=[2] * len(s)) for s in scopes]
    return FactorGraph.from_scopes(variables, scopes, tables)


def test_colouring_separates_neighbours():
    graph = mixed_graph()
    colours = greedy_colouring(graph)
    for scope in graph.factor_to_vars:
        assert len({colours[v] for v in scope}) == len(scope)


@pytest.mark.parametrize(
    "make_graph, num_chains, staged",
    [(mixed_graph, 64, False), (mixed_graph, 2048, False), (binary_graph, 2048, False),
     (mixed_graph, 256, True), (binary_graph, 256, True)],
)
def test_sweep_moments_match_enumeration(make_graph, num_chains, staged, monkeypatch):
    if staged:  # one stage per degree bucket, as large graphs get
        monkeypatch.setattr("calibrated_response_smm.mcmc.plan.STAGED_MIN_VARS", 0)
    graph = make_graph()
    layout = build_layout(graph)
    plan = build_plan(graph, layout, num_chains).device()
    theta = tuple(jnp.asarray(t) for t in graph_tables(layout, graph))
    rows = make_rows(plan, layout.shape, theta)
    seed = jnp.asarray(seed_words(0))
    x = random_states(plan, seed, num_chains)
    n_sweeps = 400 * 2048 // num_chains

    @jax.jit
    def run(x, counter):
        return run_sweeps(plan, rows, x, seed, counter, zero_accumulators(layout.shape), n_sweeps)

    assert (len(plan.stages) > 1) == staged
    widths = {stage.states.shape[0] for stage in plan.stages}
    # staged mixed models sweep their binary variables at width 2, the rest at S
    assert widths == ({2, layout.n_states} if staged and make_graph is mixed_graph else {layout.n_states})
    assert any(np.any(np.asarray(stage.pair_flip)) for stage in plan.stages)  # pivots on both scope positions
    x, _ = run(x, jnp.uint32(0))
    x, acc = run(x, jnp.uint32(n_sweeps))
    moments = unpad_tables(layout, graph, moment_rows_to_tables(layout.shape, acc.moments / acc.sweeps))
    joint = graph_joint(graph)
    for factor, table in zip(graph.factors, moments):
        expected = joint.sum(axis=tuple(i for i in range(graph.n_vars) if i not in factor.var_ids))
        # ~800k Rao-Blackwellised site draws: standard error below 1e-3 per cell;
        # 0.005 leaves room for autocorrelation between sweeps.
        np.testing.assert_allclose(table, expected, atol=0.005)
    marginals = np.asarray(acc.marginals / acc.sweeps)
    for i, size in enumerate(graph.sizes):
        expected = joint.sum(axis=tuple(j for j in range(graph.n_vars) if j != i))
        np.testing.assert_allclose(marginals[i, :size], expected, atol=0.005)


def test_balanced_pivots_bound_every_variables_pivot_count():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(2, 40))
        scopes = rng.integers(0, n, size=(int(rng.integers(1, 120)), 2))
        scopes = scopes[scopes[:, 0] != scopes[:, 1]]  # repeated pairs stay: a graph may have them
        pivot = balanced_pivots(scopes, n)
        assert set(np.unique(pivot)) <= {0, 1}
        degree = np.bincount(scopes.reshape(-1), minlength=n)
        pivots = np.bincount(scopes[np.arange(len(scopes)), pivot], minlength=n)
        assert np.all(pivots <= (degree + 1) // 2)


def test_local_energy_delta_matches_full_energy():
    graph = mixed_graph(1)
    state = {"cat": jnp.array([1, 2, 0, 1]), "cont": jnp.array([2.5])}
    for var_id, proposed in [(0, 0), (1, 1), (2, 0.3), (4, 0)]:
        changed = {k: v for k, v in state.items()}
        if graph.variables[var_id].kind == "categorical":
            position = [i for i, v in enumerate(graph.variables) if v.kind == "categorical"].index(var_id)
            changed["cat"] = state["cat"].at[position].set(proposed)
        else:
            changed["cont"] = state["cont"].at[0].set(proposed)
        expected = energy(graph, changed) - energy(graph, state)
        assert float(local_energy_delta(graph, state, var_id, proposed)) == pytest.approx(float(expected), abs=1e-5)


def test_buffer_compiles_its_sweep_once():
    """Repeated sampling calls and fresh buffers reuse one compiled sweep (same shapes)."""
    from calibrated_response_smm.mcmc import buffer as buffer_module

    graph = mixed_graph(2)
    PersistentBuffer.initialize(graph, num_chains=64, rng=1).sample_step(n_sweeps=2)
    compiled = buffer_module._advance._cache_size()
    for rng in (2, 3):
        PersistentBuffer.initialize(graph, num_chains=64, rng=rng).sample_step(n_sweeps=2).sample_step(n_sweeps=2)
    assert buffer_module._advance._cache_size() == compiled


def test_buffer_states_and_marginals():
    graph = mixed_graph(2)
    buffer = PersistentBuffer.initialize(graph, num_chains=1024, rng=5)
    buffer.sample_step(graph, n_sweeps=20)
    states = buffer.get_states()
    assert states["cat"].shape == (1024, 4) and states["cat"].dtype == np.int32
    assert states["cont"].shape == (1024, 1)
    assert np.all((states["cont"] >= 0.0) & (states["cont"] <= 4.0))
    marginals = buffer.marginals(n_sweeps=200)
    joint = graph_joint(graph)
    for i, p in enumerate(marginals):
        expected = joint.sum(axis=tuple(j for j in range(graph.n_vars) if j != i))
        # 1024 chains x 200 sweeps, Rao-Blackwellised: standard error ~1e-3.
        np.testing.assert_allclose(p, expected, atol=0.01)
