"""Gibbs throughput of smm beside THRML on the same random sparse graphs (pytest-benchmark group ``thrml``).

    python benchmarks/bench_thrml.py                     # K = 2, 10, 21; results/thrml.json and REPORT.md
    python benchmarks/bench_thrml.py --vars 1000000 --pairs 2500000 --states 2,10 --peers smm --no-report
    pytest benchmarks/bench_thrml.py --benchmark-enable -s

Both samplers run chromatic (block) Gibbs on one pairwise model: ``bench_smm.random_sparse_graph``
(``--vars`` variables of ``K`` states, ``--pairs`` distinct random pairs, each with a table of
log-potentials drawn from N(0, 0.3^2), seed 0), ``--chains`` chains and ``--sweeps`` sweeps per
timed call, the median of ``--rounds`` calls after one compiling call. A site update is one variable
of one chain resampled from its full conditional, so the rate is variables x chains x sweeps /
seconds for both.

- smm: ``bench_smm.sweep_runner``, its own sweep kernel, the chains split across the local
  devices as the backend splits them (one CPU device per core).
- THRML (the optional PyPI package ``thrml``, ``pip install -e ".[peers]"``): every variable a
  ``CategoricalNode``, the pairs one ``SquareCategoricalEBMFactor`` (THRML's energy is minus the
  summed table entries, so it is the same distribution), one free block per colour of a greedy
  colouring, ``CategoricalGibbsConditional`` samplers, ``sample_states`` with ``--sweeps`` warm-up
  sweeps vmapped over the chains, whose states are laid out across the same devices.

When ``thrml`` is not installed, its rows are skipped with the reason and smm is still timed (the
GPU script runs it so).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_smm  # noqa: E402  (sets up one CPU device per core before jax starts)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

PEER = "thrml"
DEFAULTS = dict(n_vars=10_000, n_pairs=25_000, chains=256, sweeps=10, rounds=3)
STATES = (2, 10, 21)
DEFAULT_OUT = HERE / "results" / "thrml.json"
DEFAULT_REPORT = HERE / "REPORT.md"
SECTION = "thrml"


def thrml_missing() -> str | None:
    """Why THRML cannot be timed here (None: it can)."""
    if importlib.util.find_spec("thrml") is None:
        return 'the optional package thrml is not installed (pip install -e ".[peers]")'
    return None


def greedy_colouring(n_vars: int, pairs: np.ndarray) -> np.ndarray:
    """A colour per variable such that no pair has both ends of one colour (highest degree first)."""
    neighbours: list[list[int]] = [[] for _ in range(n_vars)]
    for a, b in pairs.tolist():
        neighbours[a].append(b)
        neighbours[b].append(a)
    colours = np.full(n_vars, -1, dtype=np.int64)
    for v in sorted(range(n_vars), key=lambda v: -len(neighbours[v])):
        taken = {colours[u] for u in neighbours[v]}
        colours[v] = next(c for c in range(len(taken) + 1) if c not in taken)
    return colours


def graph_pairs(graph) -> tuple[np.ndarray, np.ndarray]:
    """``(pairs [m, 2], tables [m, K, K])`` of a graph of pairwise factors."""
    pairs = np.array([f.var_ids for f in graph.factors], dtype=np.int64).reshape(-1, 2)
    tables = np.stack([np.asarray(f.parameters, dtype=np.float32) for f in graph.factors])
    return pairs, tables


def chain_sharding():
    """A sharding of a leading chain axis across the local devices (None with one device)."""
    devices = jax.local_devices()
    if len(devices) == 1:
        return None
    mesh = jax.sharding.Mesh(np.array(devices), ("chains",))
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("chains"))


def thrml_runner(graph, num_chains: int, n_sweeps: int, seed: int = 0) -> tuple[Callable[[], object], int]:
    """``(run, devices)``: ``run()`` performs ``n_sweeps`` THRML block-Gibbs sweeps of every chain and blocks."""
    import thrml
    from thrml.models import CategoricalGibbsConditional, SquareCategoricalEBMFactor

    states = graph.sizes[0]
    pairs, tables = graph_pairs(graph)
    colours = greedy_colouring(graph.n_vars, pairs)
    nodes = [thrml.CategoricalNode() for _ in range(graph.n_vars)]
    blocks = [thrml.Block([nodes[i] for i in np.flatnonzero(colours == c)]) for c in range(colours.max() + 1)]
    factor = SquareCategoricalEBMFactor(
        [thrml.Block([nodes[a] for a in pairs[:, 0]]), thrml.Block([nodes[b] for b in pairs[:, 1]])],
        jnp.asarray(tables))
    program = thrml.FactorSamplingProgram(thrml.BlockGibbsSpec(blocks, []),
                                          [CategoricalGibbsConditional(states) for _ in blocks], [factor], [])
    schedule = thrml.SamplingSchedule(n_warmup=n_sweeps, n_samples=1, steps_per_sample=1)
    observed = [thrml.Block(nodes[:1])]  # the sweeps feed this observation, so none is dropped

    def chains(keys, init, call):
        keys = jax.vmap(lambda key: jax.random.fold_in(key, call))(keys)  # new draws on every call
        return jax.vmap(lambda key, state: thrml.sample_states(key, program, schedule, state, [], observed))(
            keys, init)

    rng = np.random.default_rng(seed)
    init = [jnp.asarray(rng.integers(0, states, size=(num_chains, len(block))), dtype=jnp.uint8) for block in blocks]
    keys = jax.random.split(jax.random.key(seed), num_chains)
    sharding = chain_sharding()
    devices = 1 if sharding is None else len(jax.local_devices())
    if sharding is not None:
        init, keys = jax.device_put(init, sharding), jax.device_put(keys, sharding)
    sample = jax.jit(chains)
    jax.block_until_ready(sample(keys, init, jnp.uint32(0)))  # compile
    calls = [0]

    def run():
        calls[0] += 1
        return jax.block_until_ready(sample(keys, init, jnp.uint32(calls[0])))

    return run, devices


RUNNERS = {"smm": bench_smm.sweep_runner, PEER: thrml_runner}


def median_seconds(run: Callable[[], object], rounds: int) -> float:
    """Median wall-clock seconds of ``rounds`` calls of an already compiled ``run``."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(peer: str, graph, chains: int, sweeps: int, rounds: int) -> dict:
    """One throughput record of ``peer`` on ``graph`` (status ``skipped`` with the reason when it cannot run)."""
    base = {"peer": peer, "states": graph.sizes[0], "n_vars": graph.n_vars, "n_pairs": len(graph.factors),
            "chains": chains, "sweeps": sweeps, "rounds": rounds}
    reason = thrml_missing() if peer == PEER else None
    if reason:
        return {**base, "status": "skipped", "message": reason}
    started = time.perf_counter()
    run, devices = RUNNERS[peer](graph, chains, sweeps)
    setup = time.perf_counter() - started
    seconds = median_seconds(run, rounds)
    return {**base, "status": "ok", "devices": devices, "setup_and_compile_s": setup, "seconds": seconds,
            "site_updates_per_s": graph.n_vars * chains * sweeps / seconds}


def with_ratios(records: Sequence[dict]) -> list[dict]:
    """Each smm record with ``ratio``: its rate over THRML's on the same graph, where both ran."""
    peer_rates = {(r["states"], r["n_vars"], r["n_pairs"]): r["site_updates_per_s"] for r in records
                  if r["peer"] == PEER and r["status"] == "ok"}
    out = []
    for r in records:
        other = peer_rates.get((r["states"], r["n_vars"], r["n_pairs"]))
        out.append({**r, "ratio": r["site_updates_per_s"] / other} if r["peer"] == "smm" and other
                   and r["status"] == "ok" else r)
    return out


def run_all(n_vars: int, n_pairs: int, states: Sequence[int], chains: int, sweeps: int, rounds: int,
            peers: Sequence[str], log=print, save=lambda records: None) -> list[dict]:
    """Every peer on the graph of every ``K`` in ``states``; ``save(records so far)`` after each."""
    records = []
    for k in states:
        graph = bench_smm.random_sparse_graph(n_vars, n_pairs, k)
        for peer in peers:
            record = measure(peer, graph, chains, sweeps, rounds)
            log(line(record))
            records.append(record)
            save(with_ratios(records))
    return with_ratios(records)


def line(record: dict) -> str:
    head = f"{record['peer']:>5} K={record['states']:<3} {record['n_vars']:,} variables, {record['n_pairs']:,} pairs"
    if record["status"] != "ok":
        return f"{head}: {record['status']} ({record['message']})"
    return (f"{head}, {record['chains']} chains x {record['sweeps']} sweeps on {record['devices']} device(s): "
            f"{record['site_updates_per_s']:.3g} site updates/s ({record['seconds']:.3g} s per call)")


def device_description() -> str:
    return ", ".join(f"{d.platform}:{d.id} {d.device_kind}" for d in jax.devices()) + f" (jax {jax.__version__})"


def render_section(data: dict) -> str:
    """The ``thrml`` section of REPORT.md."""
    from render import markdown_table

    records = data.get("records", [])
    by_graph: dict[tuple, dict[str, dict]] = {}
    for r in records:
        by_graph.setdefault((r["states"], r["n_vars"], r["n_pairs"], r["chains"], r["sweeps"]), {})[r["peer"]] = r
    rows = []
    for (k, n, m, chains, sweeps), peers in sorted(by_graph.items()):
        smm, peer = peers.get("smm", {}), peers.get(PEER, {})
        rate = lambda r: f"{r['site_updates_per_s']:.3g}" if r.get("status") == "ok" else r.get("status", "-")  # noqa: E731
        rows.append([k, f"{n:,}", f"{m:,}", chains, sweeps, rate(smm), rate(peer),
                     f"{smm['ratio']:.1f}" if "ratio" in smm else "-"])
    skipped = sorted({r["message"] for r in records if r["status"] == "skipped"})
    parts = [
        "## Gibbs throughput beside THRML",
        "Written by `python benchmarks/bench_thrml.py`: smm's sweep kernel and THRML "
        f"{data.get('thrml_version') or ''} (`thrml` on PyPI) run chromatic Gibbs on the same random sparse "
        "pairwise graphs (`bench_smm.random_sparse_graph`, seed 0: K states per variable, random distinct "
        "pairs with N(0, 0.3²) log-potential tables), with the same chains and sweeps per timed call, the "
        "chains of both laid out across the same devices. Site updates per second = variables × chains × "
        "sweeps / median seconds of a call, after a compiling call; THRML uses categorical nodes for every "
        "K, one free block per colour of a greedy colouring.",
        f"Machine: {data.get('machine', {}).get('cpu', '?')} ({data.get('machine', {}).get('cores', '?')} cores), "
        f"{data.get('device', '?')}, load average at the start {data.get('machine', {}).get('load average', '?')}, "
        f"{data.get('date', '?')}.",
        markdown_table(["K", "variables", "pairs", "chains", "sweeps", "smm site updates / s",
                        "THRML site updates / s", "smm / THRML"], rows) if rows else "Nothing measured yet.",
    ]
    if skipped:
        parts.append("Not measured: " + "; ".join(skipped) + ".")
    if data.get("note"):
        parts.append(f"Note: {data['note']}.")
    return "\n\n".join(parts)


def machine() -> dict:
    from measure import cpu_description, load_average

    model, cores = cpu_description(Path("/proc/cpuinfo").read_text(encoding="utf-8"))
    return {"cpu": model, "cores": cores, "load average": load_average()}


def thrml_version() -> str | None:
    if thrml_missing():
        return None
    from importlib.metadata import version

    return version("thrml")


# --------------------------------------------------------------------------- pytest-benchmark

_SMM_RATES: dict[int, float] = {}


def _bench(benchmark, peer: str, states: int):
    if peer == PEER and thrml_missing():
        pytest.skip(thrml_missing())
    graph = bench_smm.random_sparse_graph(DEFAULTS["n_vars"], DEFAULTS["n_pairs"], states)
    run, devices = RUNNERS[peer](graph, DEFAULTS["chains"], DEFAULTS["sweeps"])
    benchmark.pedantic(run, rounds=DEFAULTS["rounds"], iterations=1)
    rate = graph.n_vars * DEFAULTS["chains"] * DEFAULTS["sweeps"] / benchmark.stats.stats.median
    if peer == "smm":
        _SMM_RATES[states] = rate
    benchmark.extra_info.update(bench_smm.machine(), peer=peer, states=states, devices=devices,
                                site_updates_per_s=rate, **DEFAULTS)
    if peer == PEER and states in _SMM_RATES:
        benchmark.extra_info["smm_over_thrml"] = _SMM_RATES[states] / rate
    print(f"\n{peer} K={states}: {rate:.3g} site updates/s")


@pytest.mark.benchmark(group="thrml")
@pytest.mark.parametrize("states", STATES)
@pytest.mark.parametrize("peer", ["smm", PEER])
def test_sparse_gibbs_throughput(benchmark, peer, states):
    """Site updates per second of smm and of THRML, same graph, chains and sweeps."""
    _bench(benchmark, peer, states)


# --------------------------------------------------------------------------- command


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vars", type=int, default=DEFAULTS["n_vars"])
    parser.add_argument("--pairs", type=int, default=DEFAULTS["n_pairs"])
    parser.add_argument("--states", default=",".join(map(str, STATES)), help="comma-separated K")
    parser.add_argument("--chains", type=int, default=DEFAULTS["chains"])
    parser.add_argument("--sweeps", type=int, default=DEFAULTS["sweeps"])
    parser.add_argument("--rounds", type=int, default=DEFAULTS["rounds"])
    parser.add_argument("--peers", default=f"smm,{PEER}", help="comma-separated, of smm and thrml")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT)
    parser.add_argument("--no-report", action="store_true", help="leave REPORT.md alone")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = sorted(set(peers) - set(RUNNERS))
    if unknown:
        raise SystemExit(f"unknown peer(s) {unknown}; known: {sorted(RUNNERS)}")
    start = {"machine": machine(), "device": device_description(), "thrml_version": thrml_version(),
             "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save(records):  # after every measurement, so a run cut short keeps what it measured
        args.out.write_text(json.dumps({**start, "records": records}, indent=1) + "\n", encoding="utf-8")

    records = run_all(args.vars, args.pairs, [int(k) for k in args.states.split(",")], args.chains, args.sweeps,
                      args.rounds, peers, save=save)
    data = {**start, "records": records}
    print(f"wrote {args.out}")
    if not args.no_report:
        from sections import write_section

        write_section(args.report, SECTION, render_section(data))
        print(f"wrote section {SECTION!r} of {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
