"""Speed of the smm backend on this machine (pytest-benchmark).

    pytest benchmarks/bench_smm.py --benchmark-enable -s

Every benchmark compiles before timing and blocks on the result
(``jax.block_until_ready``); sizes and derived rates go to ``extra_info``.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from calibrated_response_plugins import DistributionBuilder
from calibrated_response_plugins.io import load_problem
from calibrated_response_smm.config import SMMConfig
from calibrated_response_smm.features import build_layout, graph_tables
from calibrated_response_smm.graph import FactorGraph, SMMVariable
from calibrated_response_smm.mcmc import kernels
from calibrated_response_smm.targets import TableTargets
from calibrated_response_smm.training import SMMModel, Static, init_state, run_chunk

CASES = Path(__file__).resolve().parents[1].parent / "shared" / "cases"
CASE = "fb_baseline_1.json"  # five variables (four continuous at 21 bins), 15 estimates


def machine() -> dict:
    return {"device": str(jax.devices()[0]), "cpus": os.cpu_count(), "platform": platform.platform()}


def random_sparse_graph(n_vars: int, n_pairs: int, states: int, seed: int = 0) -> FactorGraph:
    """Unary factors plus ``n_pairs`` random distinct pairs (a sparse random graph)."""
    rng = np.random.default_rng(seed)
    pairs = np.sort(rng.integers(0, n_vars, size=(int(n_pairs * 1.1) + 10, 2)), axis=1)
    pairs = np.unique(pairs[pairs[:, 0] != pairs[:, 1]], axis=0)[:n_pairs]
    variables = [SMMVariable.categorical(f"x{i}", states) for i in range(n_vars)]
    scopes = [(int(a), int(b)) for a, b in pairs]
    tables = list(rng.normal(scale=0.3, size=(len(scopes), states, states)))
    return FactorGraph.from_scopes(variables, scopes, tables)


def lattice_graph(side: int, states: int, seed: int = 0) -> FactorGraph:
    """A ``side x side`` grid: unary factors and nearest-neighbour pairs (two colours)."""
    rng = np.random.default_rng(seed)
    n = side * side
    scopes = [(i,) for i in range(n)]
    for r in range(side):
        for c in range(side):
            i = r * side + c
            if c + 1 < side:
                scopes.append((i, i + 1))
            if r + 1 < side:
                scopes.append((i, i + side))
    variables = [SMMVariable.categorical(f"x{i}", states) for i in range(n)]
    tables = [rng.normal(scale=0.5, size=[states] * len(s)) for s in scopes]
    return FactorGraph.from_scopes(variables, scopes, tables)


@pytest.mark.skipif(not (CASES / CASE).exists(), reason="shared cases not available")
def test_case_build_warm(benchmark):
    """A 5-variable real case through ``DistributionBuilder(backend="smm")``, compiled code reused."""
    problem = load_problem(CASES / CASE)
    builder = DistributionBuilder(problem.variables, problem.estimates, backend="smm")
    builder.build(problem.target_variable, progress=False)  # compile
    _, info = benchmark.pedantic(
        lambda: builder.build(problem.target_variable, progress=False), rounds=5, iterations=1
    )
    code = (
        "import time; t=time.perf_counter();"
        "from calibrated_response_plugins import DistributionBuilder;"
        "from calibrated_response_plugins.io import load_problem;"
        f"p=load_problem({str(CASES / CASE)!r});"
        "DistributionBuilder(p.variables,p.estimates,backend='smm').build(p.target_variable,progress=False);"
        "print(time.perf_counter()-t)"
    )
    cold = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    benchmark.extra_info.update(
        machine(), case=CASE, n_variables=info["n_variables"], n_constraints=len(info["constraint_report"]),
        num_chains=info["diagnostics"]["num_chains"], sweeps=info["diagnostics"]["sweeps"],
        cold_build_s_fresh_process=cold,
    )
    print(f"\n{CASE}: warm build {benchmark.stats.stats.median:.3f} s, cold (fresh process, with import "
          f"and compilation) {cold:.2f} s")


def _throughput(benchmark, graph: FactorGraph, num_chains: int, n_sweeps: int, label: str):
    layout = build_layout(graph)
    plan = kernels.build_plan(graph, layout, num_chains).device()
    theta = tuple(jnp.asarray(t) for t in graph_tables(layout, graph))
    rows = kernels.make_rows(plan, layout.shape, theta)
    seed = jnp.asarray(kernels.seed_words(0))
    x = kernels.random_states(plan, seed, num_chains)
    run = jax.jit(lambda x, c: kernels.run_sweeps(plan, rows, x, seed, c, None, n_sweeps, accumulate=False)[0])
    jax.block_until_ready(run(x, jnp.uint32(0)))  # compile
    benchmark.pedantic(lambda: jax.block_until_ready(run(x, jnp.uint32(1))), rounds=5, iterations=1)
    rate = graph.n_vars * num_chains * n_sweeps / benchmark.stats.stats.median
    benchmark.extra_info.update(
        machine(), n_vars=graph.n_vars, n_factors=len(graph.factors), states=graph.sizes[0],
        num_chains=num_chains, sweeps=n_sweeps, site_updates_per_s=rate,
    )
    print(f"\n{label}: {rate:.3g} site updates/s ({graph.n_vars} variables x {num_chains} chains x {n_sweeps} sweeps)")


def test_gibbs_throughput_binary(benchmark):
    _throughput(benchmark, lattice_graph(100, 2), num_chains=512, n_sweeps=20, label="binary 100x100 lattice")


def test_gibbs_throughput_21_states(benchmark):
    _throughput(benchmark, lattice_graph(100, 21), num_chains=256, n_sweeps=5, label="21-state 100x100 lattice")


def test_large_training_iteration(benchmark):
    """One training iteration (one sweep + moments + Adam step) of 100k variables, 300k factors, 10 states."""
    started = time.perf_counter()
    graph = random_sparse_graph(100_000, 300_000, 10)
    targets = TableTargets([np.full(f.table_shape, 1.0 / f.parameters.size) for f in graph.factors])
    config = SMMConfig(num_chains=256, mcmc_steps_per_iteration=1, optimizer="adam", learning_rate=0.05)
    model = SMMModel.build(graph, targets, config.num_chains)
    objective = model.objective()
    plan = model.plan.device()
    setup = time.perf_counter() - started
    static = Static(model.layout.shape, "adam", 1, 1.0, None, 1e4, 1e-3)
    state = init_state(static, plan, objective, config.num_chains, jnp.asarray(kernels.seed_words(0)))
    one = np.ones(1, np.float32) * config.learning_rate
    zero = np.zeros(1, np.float32)
    jax.block_until_ready(run_chunk(static, plan, objective, state, one, zero))  # compile
    benchmark.pedantic(
        lambda: jax.block_until_ready(run_chunk(static, plan, objective, state, one, zero)), rounds=3, iterations=1
    )
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    benchmark.extra_info.update(
        machine(), n_vars=graph.n_vars, n_factors=len(graph.factors), states=10, num_chains=256,
        setup_s=setup, peak_rss_gb=peak_gb, colours=int(model.plan.colours.max()) + 1,
        padded_shape=json.dumps(list(model.layout.shape)),
    )
    print(f"\n100k variables / {len(graph.factors)} factors / 10 states / 256 chains: one iteration "
          f"{benchmark.stats.stats.median:.2f} s, peak RSS {peak_gb:.2f} GB, host setup {setup:.1f} s")
