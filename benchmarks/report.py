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

Cases come from :func:`harness.cases_directory` (the 240 shared cases when present,
else the 12 shipped in ``benchmarks/cases/``); ``|ΔP(target)|`` is :func:`harness.target_difference`.
The work is split in three: :mod:`measure` (fits and timings), :mod:`render`
(figures, Markdown, README headline) and this command.

``--quick`` fits 12 evenly spaced cases and times the two smallest synthetic sizes, for
smoke runs. A backend failing on a case is recorded and counted, never fatal.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from calibrated_response_plugins import load_problem  # noqa: E402
from calibrated_response_plugins.registry import installed_backends  # noqa: E402

from harness import SHARED_CASES, cases_directory  # noqa: E402
from harness import target_value as target_probability  # noqa: E402,F401  (the one metric: part of this module's API)
from sections import carry_sections  # noqa: E402
from measure import (  # noqa: E402,F401  (CaseResult: part of this module's API)
    REFERENCE,
    CaseResult,
    load_average,
    machine_description,
    measure_gibbs,
    measure_scaling,
    run_cases,
    warm_up,
)
from render import (  # noqa: E402,F401  (the markers and replace_between_markers: part of this module's API)
    HEADLINE_END,
    HEADLINE_START,
    headline_table,
    plot_accuracy,
    plot_case_times,
    plot_scaling,
    readme_headline,
    render_report,
    replace_between_markers,
    update_readme,
)
from synthetic import SYNTHETIC_SIZES  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_CASES = cases_directory()
DEFAULT_REPORT = HERE / "REPORT.md"
DEFAULT_FIGURES = HERE / "figures"
DEFAULT_README = ROOT / "README.md"
QUICK_CASES = 12  # every 20th of the 240 shared cases; all of the 12 shipped ones
QUICK_SIZES = (100, 1_000)
GIBBS_SIZES = SYNTHETIC_SIZES
QUICK_GIBBS_SIZES = (100,)


# --------------------------------------------------------------------------- command


def display_path(path: Path) -> str:
    """``path`` relative to the repository when inside it (e.g. ``benchmarks/cases``)."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="12 evenly spaced cases and the two smallest synthetic sizes")
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


def use_every_core() -> None:
    """One JAX CPU device per core for smm's sweeps, as its users are told to ask for (process-wide)."""
    if "smm" in installed_backends():
        from calibrated_response_smm import use_cpu_cores

        use_cpu_cores()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    use_every_core()
    started = time.perf_counter()
    load_at_start = load_average()
    backends = chosen_backends(args.backends)
    paths = sorted(args.cases.glob("*.json"))
    if not paths:
        raise SystemExit(f"no case files in {args.cases}")
    if args.quick:
        paths = paths[:: max(1, len(paths) // QUICK_CASES)]
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
        "cases_dir": "../shared/cases" if args.cases == SHARED_CASES else display_path(args.cases),
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
