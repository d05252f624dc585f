"""Speed of every installed backend on real cases and on synthetic sparse graphs.

Run from the repository root (the root configuration disables benchmarks by
default, so enable them)::

    pytest benchmarks/ --benchmark-enable --benchmark-only
    pytest benchmarks/ --benchmark-enable --benchmark-only --benchmark-group-by=param:backend
    pytest benchmarks/ --benchmark-enable --benchmark-only -k "case-5vars or 100vars" -rs

The default grouping puts all backends of one problem in one table; grouping by
``param:backend`` gives one table per backend across problem sizes. ``-rs``
lists the skips and their reasons (a backend refusing a problem, a size above
its limit, the shared cases missing).

Three benchmarks per backend:

- ``test_build_case``: ``DistributionBuilder(...).build(progress=False)`` on one
  real case from ``harness.cases_directory()`` (``$CALIBRATED_RESPONSE_CASES``, ``../shared/cases``, or the 12 in ``benchmarks/cases/``) for each
  size band (5, 8-9 and 10-15 variables): the case at the lower median of the
  band's joint sizes, ties broken by file name.
- ``test_build_synthetic``: the public builder on synthetic graphs of 100 and
  1,000 variables (``benchmarks/synthetic.py``) with a short fixed-iteration
  configuration: compilation, setup and a few iterations, not a converged fit.
- ``test_iteration_synthetic``: a few training iterations (one from 10,000
  variables) of an already compiled model on synthetic graphs of 100 to 100,000
  variables, for the backends with an iteration driver, within their size limits
  (``synthetic.MAX_SYNTHETIC_VARIABLES``; raise them with
  ``CALIBRATED_RESPONSE_BENCH_LIMITS="smm=100000,pgmax=100000"``).

Every benchmark runs once untimed first (JIT compilation, imports, caches), waits
for JAX arrays with ``jax.block_until_ready``, and records the device, the
problem sizes and, where the backend has them, the chains in ``extra_info``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calibrated_response_plugins import DistributionBuilder, load_problem
from calibrated_response_plugins.compiler import make_domains
from calibrated_response_plugins.config import CoreConfig
from calibrated_response_plugins.models import coerce_variable

from synthetic import (
    SHORT_FIT_ITERATIONS,
    SYNTHETIC_SIZES,
    Unsupported,
    backend_config,
    backend_device,
    block,
    iteration_runner,
    iterations_per_call,
    short_fit_options,
    size_limit_reason,
)

CASE_BANDS = {"case-5vars": (5, 5), "case-8-9vars": (8, 9), "case-10-15vars": (10, 15)}
BUILD_SYNTHETIC_SIZES = (100, 1_000)
CASE_ROUNDS = 3
BUILD_SYNTHETIC_ROUNDS = 2
ITERATION_ROUNDS = {100: 5, 1_000: 3, 10_000: 2, 100_000: 2}


def case_size(path: Path, max_bins: int = CoreConfig().max_bins) -> tuple[int, int]:
    """``(number of variables, number of joint states)`` of a case file."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    domains = make_domains([coerce_variable(v) for v in data["variables"]], max_bins)
    joint = 1
    for domain in domains:
        joint *= domain.n_states
    return len(domains), joint


def pick_case(sizes: dict[str, tuple[int, int]], low: int, high: int) -> str | None:
    """The name whose joint size is the lower median among cases with ``low..high`` variables."""
    band = sorted((joint, name) for name, (n, joint) in sizes.items() if low <= n <= high)
    return band[(len(band) - 1) // 2][1] if band else None


def band_case(cases_dir: Path, band: str) -> Path:
    """The case file of a size band; skip when the folder has none."""
    sizes = {path.name: case_size(path) for path in sorted(cases_dir.glob("*.json"))}
    low, high = CASE_BANDS[band]
    name = pick_case(sizes, low, high)
    if name is None:
        pytest.skip(f"no case with {low}-{high} variables in {cases_dir}")
    return cases_dir / name


def chains_of(config) -> int | None:
    """The number of Markov chains a config runs, if it has that notion."""
    return getattr(config, "num_chains", None)


def warm_build(builder: DistributionBuilder, target: str) -> dict:
    """One untimed build; a backend refusing the problem (``ValueError``) skips the benchmark."""
    try:
        _, info = builder.build(target_variable=target, progress=False)
    except ValueError as error:
        pytest.skip(f"{builder.backend} refuses this problem: {error}")
    return info


def timed_build(benchmark, builder: DistributionBuilder, target: str, rounds: int) -> None:
    """Time ``builder.build`` (blocking on JAX results) over ``rounds`` rounds."""
    benchmark.pedantic(
        lambda: block(builder.build(target_variable=target, progress=False)),
        rounds=rounds,
        iterations=1,
    )


def median_seconds(benchmark) -> float | None:
    """The benchmark's median round time (None when benchmarks are disabled)."""
    stats = getattr(benchmark, "stats", None)
    return None if stats is None else float(stats.stats.median)


def problem_within_limit(synthetic_cache, backend: str, n_variables: int):
    """The synthetic problem of ``n_variables`` variables; a skip above the backend's size limit."""
    problem = synthetic_cache.problem(n_variables)
    reason = size_limit_reason(backend, problem)
    if reason:
        pytest.skip(reason)
    return problem


@pytest.mark.parametrize("band", list(CASE_BANDS))
def test_build_case(benchmark, backend, band, cases_dir):
    path = band_case(cases_dir, band)
    problem = load_problem(path)
    target = problem.target_variable or problem.variables[0].name
    builder = DistributionBuilder(problem.variables, problem.estimates, backend=backend)
    n_variables, joint = case_size(path, builder.config.max_bins)
    info = warm_build(builder, target)
    benchmark.group = f"build: real {band}"
    benchmark.extra_info.update(
        backend=backend, device=backend_device(backend), case=path.name, n_variables=n_variables,
        n_constraints=len(info["constraint_report"]), joint_states=joint, chains=chains_of(builder.config),
        n_iterations=info["n_iterations"], converged=info["converged"],
    )
    timed_build(benchmark, builder, target, CASE_ROUNDS)


@pytest.mark.parametrize("n_variables", BUILD_SYNTHETIC_SIZES, ids=lambda n: f"{n}vars")
def test_build_synthetic(benchmark, backend, n_variables, synthetic_cache):
    problem = problem_within_limit(synthetic_cache, backend, n_variables)
    options = short_fit_options(backend)
    builder = DistributionBuilder(problem.variables, problem.estimates, backend=backend, config=options)
    info = warm_build(builder, problem.target_variable)
    benchmark.group = f"build: synthetic graph, {n_variables:,} variables, {SHORT_FIT_ITERATIONS}-iteration fit"
    benchmark.extra_info.update(
        backend=backend, device=backend_device(backend), n_variables=n_variables, n_edges=problem.n_edges,
        n_constraints=len(info["constraint_report"]), chains=chains_of(builder.config),
        n_iterations=info["n_iterations"], options=options,
    )
    timed_build(benchmark, builder, problem.target_variable, BUILD_SYNTHETIC_ROUNDS)


@pytest.mark.parametrize("n_variables", SYNTHETIC_SIZES, ids=lambda n: f"{n}vars")
def test_iteration_synthetic(benchmark, backend, n_variables, synthetic_cache):
    problem = problem_within_limit(synthetic_cache, backend, n_variables)
    try:
        runner = iteration_runner(backend, synthetic_cache.constraints(n_variables), iterations_per_call(n_variables))
    except Unsupported as error:
        pytest.skip(str(error))
    block(runner.run())
    plural = "s" if runner.iterations != 1 else ""
    benchmark.group = f"train: synthetic graph, {n_variables:,} variables, {runner.iterations} iteration{plural}"
    benchmark.extra_info.update(
        backend=backend, device=backend_device(backend), n_variables=n_variables, n_edges=problem.n_edges,
        n_constraints=len(synthetic_cache.constraints(n_variables).constraints),
        iterations_per_round=runner.iterations, chains=chains_of(backend_config(backend)),
    )
    benchmark.extra_info.update(runner.extra)
    benchmark.pedantic(lambda: block(runner.run()), rounds=ITERATION_ROUNDS[n_variables], iterations=1)
    seconds = median_seconds(benchmark)
    if seconds is not None:
        benchmark.extra_info["seconds_per_iteration"] = seconds / runner.iterations
