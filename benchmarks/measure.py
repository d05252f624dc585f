"""Measure: every backend on every case, and per-iteration / per-sweep timings on synthetic graphs.

The numbers :mod:`render` turns into ``REPORT.md``; ``report.py`` is the command
that runs both. The case fits are :mod:`cases_runner`'s records; accuracy is against the
exact ``maxent`` backend with the one ``|ΔP(target)|`` metric of :mod:`harness`.
"""

from __future__ import annotations

import math
import platform
import re
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import attrs
import numpy as np

from calibrated_response_plugins.registry import installed_backends

import cases_runner
from cases_runner import REFERENCE, CaseResult, first_line, run_case, target_gap
from outcomes import status_counts
from synthetic import (
    backend_device,
    block,
    gibbs_runner,
    gibbs_support,
    iteration_runner,
    iteration_support,
    iterations_per_call,
    size_limit_reason,
    synthetic_constraints,
    synthetic_problem,
)

ROOT = Path(__file__).resolve().parents[1]
TIMING_REPEATS = 3
GIBBS_SWEEPS = 10


# --------------------------------------------------------------------------- cases


def warm_up(path: Path, backends: Sequence[str]) -> None:
    """One untimed fit per backend, so imports and first-use set-up are not charged to a case."""
    for backend in backends:
        run_case(path, backend)


def run_cases(paths: Sequence[Path], backends: Sequence[str], progress: bool = True) -> list[CaseResult]:
    """Every backend on every case (:func:`cases_runner.run_cases`, default settings), with a tqdm bar."""
    from tqdm.auto import tqdm

    bar = tqdm(paths, desc="cases", unit="case", disable=not progress)
    results = cases_runner.run_cases(bar, backends, on_case=lambda row: bar.set_postfix_str(
        next(iter(row.values())).name))
    bar.close()
    return results


# --------------------------------------------------------------------------- summaries


def quantiles(values: Sequence[float]) -> dict[str, float]:
    """Count, median, 95th percentile and maximum (NaN when empty)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return {"n": 0, "median": float("nan"), "p95": float("nan"), "max": float("nan")}
    return {"n": int(array.size), "median": float(np.median(array)), "p95": float(np.percentile(array, 95)),
            "max": float(array.max())}


def by_backend(results: Iterable[CaseResult]) -> dict[str, dict[str, CaseResult]]:
    """``{backend: {case: result}}``."""
    table: dict[str, dict[str, CaseResult]] = {}
    for result in results:
        table.setdefault(result.backend, {})[result.case] = result
    return table


def accuracy(results: Sequence[CaseResult], backend: str, reference: str = REFERENCE) -> dict:
    """``|ΔP(target)|`` and ``|residual - residual_reference|`` over the cases both fitted."""
    table = by_backend(results)
    mine, ref = table.get(backend, {}), table.get(reference, {})
    delta_p, delta_r, per_case, nan_residuals = [], [], [], 0
    for case, result in mine.items():
        exact = ref.get(case)
        if result.status != "fitted" or exact is None or exact.status != "fitted":
            continue
        delta = target_gap(result, exact)
        delta_p.append(delta)
        per_case.append((delta, case))
        for value, other in zip(result.residuals, exact.residuals):  # report order: ids repeat
            gap = abs(value - other)
            if math.isfinite(gap):
                delta_r.append(gap)
            else:
                nan_residuals += 1
    return {"delta_p": quantiles(delta_p), "delta_residual": quantiles(delta_r), "values": delta_p,
            "worst": sorted(per_case, reverse=True)[:5], "nan_residuals": nan_residuals}


def timing(results: Sequence[CaseResult], backend: str) -> dict:
    """Counts by status, seconds per fitted case, converged count and failure messages."""
    mine = [r for r in results if r.backend == backend]
    fitted = [r for r in mine if r.status == "fitted"]
    return {
        **status_counts(mine),
        "seconds": quantiles([r.seconds for r in fitted]),
        "values": [r.seconds for r in fitted],
        "total_seconds": float(sum(r.seconds for r in fitted)),
        "messages": Counter(r.message for r in mine if r.status == "error"),
        "refusals": [r.case for r in mine if r.status == "refused"],
    }


# --------------------------------------------------------------------------- synthetic graphs


@attrs.frozen
class ScalingPoint:
    """Seconds per training iteration of one backend at one synthetic size."""

    backend: str
    n_variables: int
    n_constraints: int
    seconds_per_iteration: float


def timed_calls(run: Callable[[], object], repeats: int) -> float:
    """Median wall-clock seconds of ``run`` (blocking on JAX results) after one untimed call."""
    block(run())
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        block(run())
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure_on_sizes(backends, sizes, make_runner, supported, point, label: str, progress: bool = True):
    """Time ``make_runner(backend, constraints)`` runs on every synthetic size within each backend's limit.

    Returns the points ``point(backend, n, constraints, runner, seconds)`` and, per
    backend, ``{reason: [sizes]}`` for what was not timed; ``supported(backend)`` is
    None or the reason a backend has no driver at all.
    """
    from tqdm.auto import tqdm

    points, skipped = [], {}
    timed = []
    for backend in backends:
        reason = supported(backend)
        if reason:
            skipped.setdefault(backend, {})[reason] = []
        else:
            timed.append(backend)
    for n in tqdm(sizes, desc=label, unit="size", disable=not progress):
        problem = synthetic_problem(n)
        constraints = None
        for backend in timed:
            reason = size_limit_reason(backend, problem)
            if reason is None:
                constraints = constraints or synthetic_constraints(problem)
                try:
                    runner = make_runner(backend, constraints)
                    seconds = timed_calls(runner.run, TIMING_REPEATS)
                except Exception as error:  # a size the backend cannot take is reported, not fatal
                    reason = f"failed: {first_line(error)}"
                else:
                    points.append(point(backend, n, constraints, runner, seconds))
            if reason:
                skipped.setdefault(backend, {}).setdefault(reason, []).append(n)
    return points, skipped


def measure_scaling(backends: Sequence[str], sizes: Sequence[int], progress: bool = True) -> tuple[list, dict]:
    """Seconds per training iteration of every backend with an iteration driver."""
    return measure_on_sizes(
        backends, sizes,
        lambda backend, constraints: iteration_runner(
            backend, constraints, iterations_per_call(len(constraints.domains))),
        iteration_support,
        lambda backend, n, constraints, runner, seconds: ScalingPoint(
            backend, n, len(constraints.constraints), seconds / runner.iterations),
        "synthetic", progress,
    )


def fitted_exponent(points: Sequence[ScalingPoint]) -> tuple[float, float]:
    """Slope and intercept of ``log10 t = a log10 n + b`` (NaN with fewer than two sizes)."""
    if len({p.n_variables for p in points}) < 2:
        return float("nan"), float("nan")
    x = np.log10([p.n_variables for p in points])
    y = np.log10([p.seconds_per_iteration for p in points])
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)


@attrs.frozen
class GibbsPoint:
    """Site updates per second of a backend's sampler at one synthetic size."""

    backend: str
    n_variables: int
    chains: int
    sweeps: int
    seconds: float

    @property
    def site_updates_per_second(self) -> float:
        return self.n_variables * self.chains * self.sweeps / self.seconds


def measure_gibbs(backends: Sequence[str], sizes: Sequence[int], progress: bool = True) -> tuple[list, dict]:
    """Gibbs throughput of every backend that exposes its sweeps."""
    return measure_on_sizes(
        backends, sizes,
        lambda backend, constraints: gibbs_runner(backend, constraints, GIBBS_SWEEPS),
        gibbs_support,
        lambda backend, n, constraints, runner, seconds: GibbsPoint(
            backend, n, runner.extra["chains"], runner.iterations, seconds),
        "gibbs", progress,
    )


# --------------------------------------------------------------------------- machine


def cpu_description(cpuinfo: str) -> tuple[str, int]:
    """CPU model name and number of logical processors from ``/proc/cpuinfo`` text."""
    models = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo, flags=re.MULTILINE)
    processors = re.findall(r"^processor\s*:", cpuinfo, flags=re.MULTILINE)
    return (models[0].strip() if models else platform.processor() or "unknown"), len(processors)


def git_revision() -> str:
    """The short commit of the repository (with ``+changes`` when the tree is dirty)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" +changes" if dirty else "")


def load_average() -> str:
    """``/proc/loadavg``'s 1, 5 and 15 minute load averages (other work on the machine skews timings)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text(encoding="utf-8").split()[:3])
    except OSError:
        return "unknown"


def machine_description(backends: Sequence[str], load_at_start: str = "unknown") -> dict[str, str]:
    """CPU, cores, OS, Python and library versions, each backend's device, and the load around the run."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        cpuinfo = ""
    model, cores = cpu_description(cpuinfo)
    described = {
        "CPU": model,
        "logical cores": str(cores or "unknown"),
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "numpy": np.__version__,
    }
    try:
        import jax

        described["jax"] = f"{jax.__version__} (devices: {', '.join(str(d) for d in jax.devices())})"
    except ImportError:
        described["jax"] = "not installed"
    for backend in backends:
        described[f"{backend} backend"] = f"{installed_backends().get(backend, '?')}, on {backend_device(backend)}"
    described["load average at start / end (1, 5, 15 min)"] = f"{load_at_start} / {load_average()}"
    described["commit"] = git_revision()
    return described
