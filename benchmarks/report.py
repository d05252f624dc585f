"""Accuracy and speed of every installed backend: writes benchmarks/REPORT.md and its figures.

    python benchmarks/report.py [--quick] [--cases DIR] [--backends maxent,pgmax,smm]

For every shared case and every installed backend it times
``DistributionBuilder(...).build(progress=False)`` with the backend's default
configuration and compares the result with the exact ``maxent`` backend: the
target's probability (``P(true)`` for a binary target, the mean rescaled to
[0, 1] by the domain for a continuous one) and every constraint residual. It
then times training iterations on synthetic sparse graphs (``synthetic.py``)
and, where the backend exposes its sampler, Gibbs sweeps. It writes
``benchmarks/REPORT.md``, PNG plots in ``benchmarks/figures/`` and the headline
table between the ``benchmark-headline`` markers of ``README.md``.

``--quick`` fits every 20th case and times the two smallest synthetic sizes, for
smoke runs. A backend failing on a case is recorded and counted, never fatal.
"""

from __future__ import annotations

import argparse
import datetime
import math
import platform
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import attrs
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from calibrated_response_plugins import DistributionBuilder, load_problem  # noqa: E402
from calibrated_response_plugins.registry import installed_backends  # noqa: E402

from outcomes import status_counts  # noqa: E402
from sections import carry_sections  # noqa: E402
from synthetic import (  # noqa: E402
    SYNTHETIC_SIZES,
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_CASES = ROOT.parent / "shared" / "cases"
DEFAULT_REPORT = HERE / "REPORT.md"
DEFAULT_FIGURES = HERE / "figures"
DEFAULT_README = ROOT / "README.md"
REFERENCE = "maxent"
QUICK_CASE_STEP = 20
QUICK_SIZES = (100, 1_000)
TIMING_REPEATS = 3
GIBBS_SIZES = SYNTHETIC_SIZES
QUICK_GIBBS_SIZES = (100,)
GIBBS_SWEEPS = 10
HEADLINE_START = "<!-- benchmark-headline:start -->"
HEADLINE_END = "<!-- benchmark-headline:end -->"


# --------------------------------------------------------------------------- one case


@attrs.frozen
class CaseResult:
    """One backend on one case: ``status`` is ``fitted``, ``refused`` (size guard) or ``error``."""

    case: str
    backend: str
    status: str
    seconds: float = float("nan")
    p_target: float = float("nan")
    residuals: dict = attrs.field(factory=dict)
    converged: bool = False
    message: str = ""


def target_probability(marginal: Sequence[float], bin_edges: Sequence[float], binary: bool) -> float:
    """``P(true)`` of a binary target; the mean of a continuous one rescaled to [0, 1] by its domain."""
    p = np.asarray(marginal, dtype=np.float64)
    if binary:
        return float(p[1])
    edges = np.asarray(bin_edges, dtype=np.float64)
    centres = 0.5 * (edges[:-1] + edges[1:])
    return float(p @ (centres - edges[0]) / (edges[-1] - edges[0]))


def residual_scales(constraints) -> dict[str, float]:
    """Per constraint id, the factor turning a report residual into [0, 1] units (a domain span or 1)."""
    return {c.id: abs(float(c.report_scale)) or 1.0 for c in constraints.constraints}


def scaled_residuals(report: Iterable[dict], scales: dict[str, float]) -> dict[str, float]:
    """``{id: residual / scale}`` from an ``info["constraint_report"]``."""
    return {row["id"]: float(row["residual"]) / scales.get(row["id"], 1.0) for row in report}


def refusal(backend: str, config, constraints) -> str | None:
    """The size-guard message of a backend with ``max_states`` when the joint is above it."""
    max_states = getattr(config, "max_states", None)
    if max_states is None:
        return None
    joint = math.prod(constraints.n_states)
    return f"joint of {joint:,} states above max_states={max_states:,}" if joint > max_states else None


def first_line(error: BaseException, limit: int = 160) -> str:
    """``Type: message`` on one line, shortened."""
    text = f"{type(error).__name__}: {error}".splitlines()[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_case(path: Path, backend: str) -> CaseResult:
    """Fit one case with one backend (default configuration); failures become ``error`` results."""
    problem = load_problem(path)
    target = problem.target_variable or problem.variables[0].name
    try:
        builder = DistributionBuilder(problem.variables, problem.estimates, backend=backend)
        constraints = builder.compile()
        reason = refusal(backend, builder.config, constraints)
        if reason:
            return CaseResult(path.name, backend, "refused", message=reason)
        started = time.perf_counter()
        _, info = block(builder.build(target_variable=target, progress=False))
        seconds = time.perf_counter() - started
    except Exception as error:  # the report counts failures instead of stopping at the first
        return CaseResult(path.name, backend, "error", message=first_line(error))
    index = info["variable_names"].index(target)
    binary = constraints.domains[index].kind == "binary"
    return CaseResult(
        path.name, backend, "fitted", seconds,
        target_probability(info["marginals"][target], info["bin_edges_list"][index], binary),
        scaled_residuals(info["constraint_report"], residual_scales(constraints)),
        bool(info["converged"]),
    )


def warm_up(path: Path, backends: Sequence[str]) -> None:
    """One untimed fit per backend, so imports and first-use set-up are not charged to a case."""
    for backend in backends:
        run_case(path, backend)


def run_cases(paths: Sequence[Path], backends: Sequence[str], progress: bool = True) -> list[CaseResult]:
    """Every backend on every case, with a tqdm bar over cases."""
    from tqdm.auto import tqdm

    results = []
    bar = tqdm(paths, desc="cases", unit="case", disable=not progress)
    for path in bar:
        for backend in backends:
            bar.set_postfix_str(f"{path.stem} {backend}")
            results.append(run_case(path, backend))
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
        delta = abs(result.p_target - exact.p_target)
        delta_p.append(delta)
        per_case.append((delta, case))
        for key, value in result.residuals.items():
            other = exact.residuals.get(key)
            if other is None:
                continue
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


# --------------------------------------------------------------------------- figures


def plot_ecdf(series: dict[str, np.ndarray], xlabel: str, title: str, path: Path) -> None:
    """Empirical CDFs on a log x axis, one line per backend."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for backend, values in series.items():
        values = np.sort(values)
        if values.size:
            ax.step(values, np.arange(1, values.size + 1) / values.size, where="post", label=backend)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of cases")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_accuracy(results: Sequence[CaseResult], backends: Sequence[str], path: Path) -> None:
    """Empirical CDF of |ΔP(target)| against the reference, one line per backend."""
    series = {b: np.maximum(accuracy(results, b)["values"], 1e-7) for b in backends}
    plot_ecdf(series, f"|P_backend(target) - P_{REFERENCE}(target)| (floored at 1e-7)",
              f"Accuracy against {REFERENCE} on the shared cases", path)


def plot_case_times(results: Sequence[CaseResult], backends: Sequence[str], path: Path) -> None:
    """Empirical CDF of seconds per case, one line per backend."""
    series = {b: np.asarray(timing(results, b)["values"]) for b in backends}
    plot_ecdf(series, "seconds per case (DistributionBuilder.build)", "Time per case", path)


def plot_scaling(points: Sequence[ScalingPoint], backends: Sequence[str], path: Path) -> None:
    """Seconds per iteration against variables, log-log, with the fitted power law per backend."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for backend in backends:
        mine = sorted((p for p in points if p.backend == backend), key=lambda p: p.n_variables)
        if not mine:
            continue
        n = np.array([p.n_variables for p in mine], dtype=float)
        t = np.array([p.seconds_per_iteration for p in mine])
        slope, intercept = fitted_exponent(mine)
        label = backend if math.isnan(slope) else f"{backend} (t ∝ n^{slope:.2f})"
        (line,) = ax.plot(n, t, "o", label=label)
        if not math.isnan(slope):
            ax.plot(n, 10 ** (intercept + slope * np.log10(n)), "-", color=line.get_color(), alpha=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("variables in the synthetic graph")
    ax.set_ylabel("seconds per training iteration")
    ax.set_title("Time per iteration on sparse synthetic graphs")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------- markdown


def fmt(value: float, digits: int = 3) -> str:
    """A number in a table: ``-`` for NaN, scientific notation for small values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value != 0 and abs(value) < 10 ** -digits:
        return f"{value:.1e}"
    return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def headline_table(results: Sequence[CaseResult], backends: Sequence[str]) -> str:
    """Backend, cases fitted, median / p95 |ΔP(target)| against the reference, median seconds per case."""
    rows = []
    for backend in backends:
        times = timing(results, backend)
        if backend == REFERENCE:
            median_dp = p95_dp = "reference"
        else:
            dp = accuracy(results, backend)["delta_p"]
            median_dp, p95_dp = fmt(dp["median"]), fmt(dp["p95"])
        rows.append([f"`{backend}`", f"{times['fitted']} / {times['cases']}", median_dp, p95_dp,
                     fmt(times["seconds"]["median"])])
    header = ["backend", "cases fitted", "median \\|ΔP(target)\\|", "p95 \\|ΔP(target)\\|", "median s per case"]
    return markdown_table(header, rows)


def readme_headline(results: Sequence[CaseResult], backends: Sequence[str], run: dict) -> str:
    """The README region: the headline table, what it measured, and the link to the report."""
    return "\n".join([
        headline_table(results, backends),
        "",
        f"{run['cases']} shared cases on {run['machine']['CPU']} ({run['machine']['logical cores']} cores), "
        f"{run['date']}{' (quick run)' if run['quick'] else ''}. ΔP(target) is the difference from the exact "
        f"`{REFERENCE}` backend in P(true) for a binary target, or in the mean rescaled to [0, 1] for a "
        "continuous one. Details, residuals, scaling and plots: [benchmarks/REPORT.md](benchmarks/REPORT.md).",
    ])


def replace_between_markers(text: str, body: str, start: str = HEADLINE_START, end: str = HEADLINE_END) -> str:
    """``text`` with what lies between the ``start`` and ``end`` marker lines replaced by ``body``."""
    head, found_start, rest = text.partition(start)
    _, found_end, tail = rest.partition(end)
    if not found_start or not found_end:
        raise ValueError(f"markers {start!r} and {end!r} not found")
    return f"{head}{start}\n{body.strip()}\n{end}{tail}"


def update_readme(path: Path, body: str) -> None:
    """Rewrite the headline region of the README; warn (do not fail) when its markers are missing."""
    try:
        path.write_text(replace_between_markers(path.read_text(encoding="utf-8"), body), encoding="utf-8")
    except (OSError, ValueError) as error:
        print(f"README not updated: {error}", file=sys.stderr)


def accuracy_section(results: Sequence[CaseResult], backends: Sequence[str]) -> str:
    """Tables of |ΔP(target)| and residual differences against the reference."""
    others = [b for b in backends if b != REFERENCE]
    if REFERENCE not in backends:
        return f"The reference backend `{REFERENCE}` is not installed: no accuracy comparison.\n"
    if not others:
        return "Only the reference backend is installed: nothing to compare.\n"
    rows, residual_rows, worst = [], [], []
    for backend in others:
        acc = accuracy(results, backend)
        dp, dr = acc["delta_p"], acc["delta_residual"]
        rows.append([f"`{backend}`", dp["n"], fmt(dp["median"]), fmt(dp["p95"]), fmt(dp["max"])])
        residual_rows.append([f"`{backend}`", dr["n"], fmt(dr["median"]), fmt(dr["p95"]), fmt(dr["max"]),
                              acc["nan_residuals"]])
        worst += [[f"`{backend}`", case, fmt(delta)] for delta, case in acc["worst"]]
    return "\n\n".join([
        markdown_table(["backend", "cases compared", "median", "p95", "max"], rows),
        "Constraint residuals: for every constraint both backends fitted, "
        f"\\|residual − residual_{REFERENCE}\\|, where a residual is `fitted − target` in the estimate's own "
        "terms (`info[\"constraint_report\"]`) and an expectation's residual is divided by its variable's "
        "domain span, so every residual is on a [0, 1] scale. A residual is undefined (NaN) when the "
        "fitted probability of a condition is 0; those are counted, not compared.",
        markdown_table(["backend", "constraints compared", "median", "p95", "max", "undefined"], residual_rows),
        "Largest |ΔP(target)| per backend:",
        markdown_table(["backend", "case", "\\|ΔP(target)\\|"], worst),
        "![accuracy](figures/accuracy.png)",
    ])


def timing_section(results: Sequence[CaseResult], backends: Sequence[str]) -> str:
    """Seconds per case, fit outcomes and failures per backend."""
    rows, failures = [], []
    for backend in backends:
        t = timing(results, backend)
        s = t["seconds"]
        rows.append([f"`{backend}`", t["cases"], t["fitted"], t["converged"], t["refused"], t["errors"],
                     fmt(s["median"]), fmt(s["p95"]), fmt(s["max"]), fmt(t["total_seconds"])])
        for message, count in t["messages"].most_common():
            failures.append([f"`{backend}`", count, message.replace("|", "\\|")])
        if t["refusals"]:
            failures.append([f"`{backend}`", len(t["refusals"]),
                             "refused by its size guard (joint above max_states): " + ", ".join(t["refusals"])])
    parts = [
        markdown_table(["backend", "cases", "fitted", "converged", "refused", "errors", "median s", "p95 s",
                        "max s", "total s"], rows),
        "![time per case](figures/time_per_case.png)",
    ]
    if failures:
        parts += ["Failures and refusals:", markdown_table(["backend", "cases", "message"], failures)]
    else:
        parts.append("No backend failed or refused a case.")
    return "\n\n".join(parts)


def skip_notes(skipped: dict) -> str:
    """One bullet per backend and reason, with the sizes it applies to."""
    lines = []
    for backend, reasons in sorted(skipped.items()):
        for reason, sizes in reasons.items():
            where = f" ({', '.join(f'{n:,}' for n in sizes)} variables)" if sizes else ""
            lines.append(f"- `{backend}`{where}: {reason}")
    return "\n".join(lines)


def scaling_section(points: Sequence[ScalingPoint], skipped: dict, backends: Sequence[str], sizes) -> str:
    """Seconds per iteration per size and backend, fitted exponents, and what was not timed."""
    timed = [b for b in backends if any(p.backend == b for p in points)]
    rows = []
    for n in sizes:
        cells = []
        for backend in timed:
            match = [p for p in points if p.backend == backend and p.n_variables == n]
            cells.append(fmt(match[0].seconds_per_iteration) if match else "-")
        rows.append([f"{n:,}", *cells])
    exponents = []
    for backend in timed:
        mine = [p for p in points if p.backend == backend]
        slope, _ = fitted_exponent(mine)
        exponents.append([f"`{backend}`", fmt(slope, 2), ", ".join(f"{p.n_variables:,}" for p in mine)])
    parts = []
    if timed:
        parts += [
            markdown_table(["variables", *[f"`{b}` s/iteration" for b in timed]], rows),
            "Fitted exponent `a` of `t ∝ n^a` (least squares on log10 t against log10 n over every timed size):",
            markdown_table(["backend", "exponent", "sizes"], exponents),
            "![time per iteration](figures/time_per_iteration.png)",
        ]
    else:
        parts.append("No backend could be timed on the synthetic graphs.")
    if skipped:
        parts += ["Not timed:", skip_notes(skipped)]
    return "\n\n".join(parts)


def gibbs_section(points: Sequence[GibbsPoint], skipped: dict) -> str:
    """Site updates per second of each sampler, and why other backends have none."""
    parts = []
    if points:
        rows = [[f"`{p.backend}`", f"{p.n_variables:,}", p.chains, p.sweeps, fmt(p.seconds),
                 f"{p.site_updates_per_second:.3g}"] for p in points]
        parts += [
            "A site update is one variable of one chain resampled from its full conditional; a sweep updates "
            "every variable of every chain once (chromatic Gibbs, one colour class at a time). "
            "Throughput = variables × chains × sweeps / seconds, timed after a compiling call.",
            markdown_table(["backend", "variables", "chains", "sweeps", "seconds", "site updates / s"], rows),
        ]
    else:
        parts.append("No installed backend exposes Gibbs sweeps: no throughput measured.")
    if skipped:
        parts += ["Not measured:", skip_notes(skipped)]
    return "\n\n".join(parts)


def render_report(run: dict, results, backends, scaling, gibbs) -> str:
    """The whole of REPORT.md."""
    machine = markdown_table(["", ""], ([key, value.replace("|", "/")] for key, value in run["machine"].items()))
    command = "python benchmarks/report.py" + (" --quick" if run["quick"] else "")
    points, skipped_scaling = scaling
    gibbs_points, skipped_gibbs = gibbs
    return "\n\n".join([
        "# Benchmark report",
        f"Written by `{command}` on {run['date']} in {fmt(run['seconds'], 4)} s"
        f"{' (quick run: a subset of cases and sizes)' if run['quick'] else ''}. Every number below is "
        "measured by that run; rerun the command to refresh this page, its figures and the README headline.",
        "## Machine",
        machine,
        "## Headline",
        headline_table(results, backends),
        "## Accuracy against the exact backend",
        f"Each backend fits the {run['cases']} shared cases (`{run['cases_dir']}`) with its default "
        f"configuration, and is compared with `{REFERENCE}`, which solves the same dual exactly. "
        "P(target) is P(true) for a binary target; for a continuous target it is the mean of the fitted "
        "histogram (mass uniform inside each bin) rescaled to [0, 1] by the variable's domain, so "
        "\\|ΔP(target)\\| is on the same [0, 1] scale for both kinds. Only cases the reference fitted are "
        f"compared. Target kinds in this run: {run['binary_targets']} binary, "
        f"{run['continuous_targets']} continuous.",
        accuracy_section(results, backends),
        "## Time per case",
        "Wall-clock seconds of `DistributionBuilder(...).build(progress=False)` per case: the constraint "
        "compiler, the backend's set-up, any JIT compilation it does per problem, and the fit. Before the "
        "timed cases each backend fits one case untimed, so imports and one-off start-up are not counted. "
        "A refused case is one the backend's size guard turns away before fitting.",
        timing_section(results, backends),
        "## Time per iteration on synthetic graphs",
        f"Synthetic sparse graphs from `benchmarks/synthetic.py` (seed 0): a quarter of the variables "
        "continuous on [0, 100] (21 bins), the rest binary; one P(A) or E[X] per variable and one "
        "P(A | B) per edge of a random tree plus n/2 random chords (about 2.5 constraints per variable). "
        f"Each timing is the median of {TIMING_REPEATS} calls of a few training iterations (10 at 100 "
        "variables, 2 at 1,000, 1 from 10,000) of an already compiled model, after one untimed compiling "
        "call, divided by the iterations; it is not a converged fit. An iteration is one dual update: "
        "for `smm` the Gibbs sweeps of every chain and a step on the multipliers; for `pgmax` one "
        "evaluation of the Bethe dual and its gradient (warm-started BP sweeps), about one L-BFGS-B "
        "iteration.",
        scaling_section(points, skipped_scaling, backends, run["sizes"]),
        "## Gibbs throughput",
        gibbs_section(gibbs_points, skipped_gibbs),
        "## Reproduce",
        "```bash\npython benchmarks/report.py            # this page, figures/ and the README headline\n"
        "python benchmarks/report.py --quick    # every 20th case and the two smallest sizes\n"
        "pytest benchmarks/ --benchmark-enable --benchmark-only   # pytest-benchmark timings\n```",
    ]) + "\n"


# --------------------------------------------------------------------------- command


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every 20th case and the two smallest synthetic sizes")
    parser.add_argument("--cases", type=Path, default=DEFAULT_CASES, help="folder of case JSON files")
    parser.add_argument("--backends", default=None, help="comma-separated backends (default: all installed)")
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT, help="Markdown report to write")
    parser.add_argument("--figures", type=Path, default=DEFAULT_FIGURES, help="folder for the PNG plots")
    parser.add_argument("--readme", type=Path, default=DEFAULT_README,
                        help="README whose headline region is rewritten")
    parser.add_argument("--no-readme", action="store_true", help="leave the README alone")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def chosen_backends(option: str | None) -> list[str]:
    """The reference first, then the other requested (default: installed) backends by name."""
    installed = sorted(installed_backends())
    names = installed if option is None else [b.strip() for b in option.split(",") if b.strip()]
    unknown = sorted(set(names) - set(installed))
    if unknown:
        raise SystemExit(f"unknown backend(s) {unknown}; installed: {installed}")
    return sorted(names, key=lambda b: (b != REFERENCE, b))


def target_kinds(paths: Sequence[Path]) -> Counter:
    """How many cases have a binary and how many a continuous target."""
    kinds = Counter()
    for path in paths:
        problem = load_problem(path)
        target = problem.target_variable or problem.variables[0].name
        kinds[next(v.type for v in problem.variables if v.name == target)] += 1
    return kinds


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    load_at_start = load_average()
    backends = chosen_backends(args.backends)
    paths = sorted(args.cases.glob("*.json"))
    if not paths:
        raise SystemExit(f"no case files in {args.cases}")
    if args.quick:
        paths = paths[::QUICK_CASE_STEP]
    progress = not args.no_progress
    sizes = QUICK_SIZES if args.quick else SYNTHETIC_SIZES
    gibbs_sizes = QUICK_GIBBS_SIZES if args.quick else GIBBS_SIZES

    warm_up(paths[0], backends)
    results = run_cases(paths, backends, progress)
    scaling = measure_scaling(backends, sizes, progress)
    gibbs = measure_gibbs(backends, gibbs_sizes, progress)
    kinds = target_kinds(paths)
    run = {
        "quick": args.quick,
        "cases": len(paths),
        "cases_dir": "../shared/cases" if args.cases == DEFAULT_CASES else str(args.cases),
        "binary_targets": kinds.get("binary", 0),
        "continuous_targets": kinds.get("continuous", 0),
        "sizes": sizes,
        "machine": machine_description(backends, load_at_start),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    args.figures.mkdir(parents=True, exist_ok=True)
    others = [b for b in backends if b != REFERENCE]
    plot_accuracy(results, others, args.figures / "accuracy.png")
    plot_case_times(results, backends, args.figures / "time_per_case.png")
    plot_scaling(scaling[0], backends, args.figures / "time_per_iteration.png")
    run["seconds"] = time.perf_counter() - started
    previous = args.report.read_text(encoding="utf-8") if args.report.exists() else ""
    # the sections other benchmarks write (scale, THRML, GPU) stay as they were
    args.report.write_text(carry_sections(previous, render_report(run, results, backends, scaling, gibbs)),
                           encoding="utf-8")
    if not args.no_readme:
        update_readme(args.readme, readme_headline(results, backends, run))
    print(headline_table(results, backends))
    print(f"wrote {args.report} and {args.figures}/ in {run['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
