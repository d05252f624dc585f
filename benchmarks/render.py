"""Render: the figures, the Markdown report and the README headline from measured results."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from measure import REFERENCE, TIMING_REPEATS, CaseResult, GibbsPoint, ScalingPoint, accuracy, fitted_exponent, timing

HEADLINE_START = "<!-- benchmark-headline:start -->"
HEADLINE_END = "<!-- benchmark-headline:end -->"


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
        f"Each backend fits the {run['cases']} real cases (`{run['cases_dir']}`) with its default "
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
        "python benchmarks/report.py --quick    # 12 evenly spaced cases and the two smallest sizes\n"
        "pytest benchmarks/ --benchmark-enable --benchmark-only   # pytest-benchmark timings\n```",
    ]) + "\n"
