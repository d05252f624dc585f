"""Speed of the smm backend on this machine (pytest-benchmark).

    pytest benchmarks/bench_smm.py --benchmark-enable -s

The issue's targets: Gibbs site updates per second on a 100x100 lattice (binary with
512 chains, 21 states with 256 chains); one training iteration (a sweep, its
Rao-Blackwellised moments and an Adam step) with 256 chains on a sparse pairwise
graph of 100,000 variables, 300,000 factors and 10 states, with the peak memory of a
fresh process doing the same; and the 5-variable real case through
``DistributionBuilder(...).build`` warm (compiled code reused) and cold (a fresh
process: import, compilation and fit).

Every benchmark compiles before timing and blocks on the result
(``jax.block_until_ready``); sizes and derived rates go to ``extra_info``. The chains
are split across local devices as the backend splits them (one CPU device per core:
``use_cpu_cores`` runs before jax starts; the 100k-variable model, with its 30 million
multipliers, stays on one device). Set
``SMM_BENCH_XLA_FLAGS`` to run with other XLA flags (e.g.
``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``): they are
applied here and in the fresh processes, before jax starts.
"""

from __future__ import annotations

import json
import os

if os.environ.get("SMM_BENCH_XLA_FLAGS"):  # before jax starts its backend
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + os.environ["SMM_BENCH_XLA_FLAGS"]).strip()

import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax
from calibrated_response_smm import use_cpu_cores

use_cpu_cores()  # one CPU device per core, as the backend does before its first compile

import jax.numpy as jnp
import numpy as np
from calibrated_response_plugins import DistributionBuilder
from calibrated_response_plugins.io import load_problem
from calibrated_response_smm.config import SMMConfig
from calibrated_response_smm.features import build_layout, graph_tables
from calibrated_response_smm.graph import FactorGraph, SMMVariable
from calibrated_response_smm.mcmc import sharding
from calibrated_response_smm.mcmc.gibbs import GibbsState, build_kernel
from calibrated_response_smm.mcmc.plan import build_plan
from calibrated_response_smm.mcmc.stream import seed_words
from calibrated_response_smm.mcmc.sweep import SWEEP_COMPILER_OPTIONS, make_rows
from calibrated_response_smm.targets import TableTargets
from calibrated_response_smm.step import Static, init_state
from calibrated_response_smm.training import SMMModel
from synthetic import smm_chunk_driver

CASE = Path(__file__).resolve().parents[1] / "examples" / "problems" / "lumina_probiotic.json"  # 5 variables


def machine() -> dict:
    return {
        "device": str(jax.devices()[0]), "cpus": os.cpu_count(), "platform": platform.platform(),
        "load_average": os.getloadavg(), "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "local_devices": jax.local_device_count(),
    }


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


def test_case_build_warm(benchmark):
    """A 5-variable real case through ``DistributionBuilder(backend="smm")``: warm, then cold in a fresh process."""
    problem = load_problem(CASE)
    builder = DistributionBuilder(problem.variables, problem.estimates, backend="smm")
    builder.build(problem.target_variable, progress=False)  # compile
    _, info = benchmark.pedantic(
        lambda: builder.build(problem.target_variable, progress=False), rounds=5, iterations=1
    )
    code = (
        "import time; t=time.perf_counter();"
        "from calibrated_response_plugins import DistributionBuilder;"
        "from calibrated_response_plugins.io import load_problem;"
        f"p=load_problem({str(CASE)!r});"
        "DistributionBuilder(p.variables,p.estimates,backend='smm').build(p.target_variable,progress=False);"
        "print(time.perf_counter()-t)"
    )
    cold = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    benchmark.extra_info.update(
        machine(), case=CASE.name, n_variables=info["n_variables"], n_constraints=len(info["constraint_report"]),
        num_chains=info["diagnostics"]["num_chains"], sweeps=info["diagnostics"]["sweeps"],
        cold_build_s_fresh_process=cold,
    )
    print(f"\n{CASE.name}: warm build {benchmark.stats.stats.median:.3f} s (target <= 0.5), cold (fresh process, "
          f"with import and compilation) {cold:.2f} s (target <= 5)")


def sweep_runner(graph: FactorGraph, num_chains: int, n_sweeps: int) -> tuple[Callable[[], object], int]:
    """``(run, devices)``: ``run()`` performs ``n_sweeps`` chromatic Gibbs sweeps of every chain and blocks.

    The chains are split across local devices as the backend splits them; ``run`` is
    compiled (called once) before it is returned, and every call starts from the same
    states with a new sweep counter.
    """
    devices = sharding.chain_devices(None, num_chains, graph.n_vars)
    layout = build_layout(graph)
    plan = build_plan(graph, layout, num_chains // devices).device()
    theta = tuple(jnp.asarray(t) for t in graph_tables(layout, graph))
    rows = make_rows(plan, layout.shape, theta)

    def kernel(plan):  # built inside the compiled functions: the plan is an argument, not a constant
        return build_kernel(plan, layout.shape, n_sweeps, accumulate=False, devices=devices)

    init = jax.jit(lambda plan, seed: kernel(plan).init(seed, num_chains))
    sweeps = jax.jit(lambda plan, rows, state: kernel(plan).step(state, rows)[0].x,
                     compiler_options=SWEEP_COMPILER_OPTIONS)
    start = init(plan, jnp.asarray(seed_words(0)))
    jax.block_until_ready(sweeps(plan, rows, start))  # compile
    calls = [0]

    def run():
        calls[0] += 1
        state = GibbsState(start.x, start.seed, jnp.uint32(calls[0]))
        return jax.block_until_ready(sweeps(plan, rows, state))

    return run, devices


def _throughput(benchmark, graph: FactorGraph, num_chains: int, n_sweeps: int, label: str, target: float):
    run, devices = sweep_runner(graph, num_chains, n_sweeps)
    benchmark.pedantic(run, rounds=5, iterations=1)
    rate = graph.n_vars * num_chains * n_sweeps / benchmark.stats.stats.median
    benchmark.extra_info.update(
        machine(), n_vars=graph.n_vars, n_factors=len(graph.factors), states=graph.sizes[0],
        num_chains=num_chains, sweeps=n_sweeps, site_updates_per_s=rate, target=target, devices=devices,
    )
    print(f"\n{label}: {rate:.3g} site updates/s (target >= {target:.0e}) ({graph.n_vars} variables x {num_chains} "
          f"chains x {n_sweeps} sweeps, chains split across {devices} device(s))")


def test_gibbs_throughput_binary(benchmark):
    _throughput(benchmark, lattice_graph(100, 2), num_chains=512, n_sweeps=20, label="binary 100x100 lattice", target=1e8)


def test_gibbs_throughput_21_states(benchmark):
    _throughput(benchmark, lattice_graph(100, 21), num_chains=256, n_sweeps=20, label="21-state 100x100 lattice", target=3e7)


LARGE = dict(n_vars=100_000, n_factors=300_000, states=10, num_chains=256)


def large_iteration(sizes: dict | None = None):
    """``(setup seconds, one-iteration function, model)`` for the 100k-variable training benchmark.

    ``sizes`` replaces entries of :data:`LARGE` (smaller graphs for a quick check).
    """
    sizes = {**LARGE, **(sizes or {})}
    started = time.perf_counter()
    graph = random_sparse_graph(sizes["n_vars"], sizes["n_factors"], sizes["states"])
    targets = TableTargets([np.full(f.table_shape, 1.0 / f.parameters.size) for f in graph.factors])
    config = SMMConfig(num_chains=sizes["num_chains"], mcmc_steps_per_iteration=1, optimizer="adam", learning_rate=0.05)
    model = SMMModel.build(graph, targets, config.num_chains)
    objective = model.objective()
    plan = model.plan.device()
    setup = time.perf_counter() - started
    static = Static(model.layout.shape, "adam", 1, 1.0, None, 1e4, 1e-3, model.devices)
    state = init_state(static, plan, objective, config.num_chains, jnp.asarray(seed_words(0)))
    one = np.ones(1, np.float32) * config.learning_rate
    zero = np.zeros(1, np.float32)
    chunk = smm_chunk_driver(static, plan, objective, state, one, zero)
    return setup, lambda: jax.block_until_ready(chunk()[0]), model


def large_peak_memory() -> dict:
    """Peak RSS (``ru_maxrss``) of a fresh process that builds the large model and runs two iterations."""
    code = (
        "import json, resource, sys, time;"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parent)!r});"
        "import bench_smm;"
        "setup, run, _ = bench_smm.large_iteration();"
        "t = time.perf_counter(); run(); first = time.perf_counter() - t;"
        "t = time.perf_counter(); run(); second = time.perf_counter() - t;"
        "print(json.dumps(dict(setup_s=setup, first_iteration_s=first, iteration_s=second,"
        " peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_large_training_iteration(benchmark):
    """One training iteration (one sweep + moments + Adam step) of 100k variables, 300k factors, 10 states."""
    setup, run, model = large_iteration()
    run()  # compile
    benchmark.pedantic(run, rounds=3, iterations=1)
    fresh = large_peak_memory()
    benchmark.extra_info.update(
        machine(), **LARGE, setup_s=setup, fresh_process=fresh, colours=int(model.plan.colours.max()) + 1,
        stages=len(model.plan.stages), padded_shape=json.dumps(list(model.layout.shape)),
    )
    print(f"\n100k variables / 300k factors / 10 states / 256 chains: one iteration "
          f"{benchmark.stats.stats.median:.2f} s (target <= 1), host setup {setup:.1f} s; fresh process: "
          f"peak RSS {fresh['peak_rss_gb']:.2f} GB (target <= 4), first iteration with compilation "
          f"{fresh['first_iteration_s']:.1f} s")


def large_iteration_record(sizes: dict | None = None, rounds: int = 3) -> dict:
    """Setup, first (compiling) and median further iteration seconds of the large training benchmark."""
    import resource
    import statistics

    setup, run, model = large_iteration(sizes)
    started = time.perf_counter()
    run()
    first = time.perf_counter() - started
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return {**LARGE, **(sizes or {}), "setup_s": setup, "first_iteration_s": first,
            "iteration_s": statistics.median(times), "rounds": rounds, "devices": model.devices,
            "device": str(jax.devices()[0]), "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


if __name__ == "__main__":
    # python benchmarks/bench_smm.py [n_vars [n_factors]]: one JSON line of the large training iteration
    arguments = [int(float(a)) for a in sys.argv[1:3]]
    chosen = dict(zip(("n_vars", "n_factors"), arguments))
    print(json.dumps(large_iteration_record(chosen)))
