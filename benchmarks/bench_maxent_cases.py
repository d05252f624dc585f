"""Fit every shared case with the exact ``maxent`` backend; print time per case and refusals.

    python benchmarks/bench_maxent_cases.py [--cases DIR] [--limit N] [--max-states N]

Importable: :func:`run_cases` returns one :class:`CaseOutcome` per file and
:func:`summarise` the figures the script prints.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import attrs
from calibrated_response_plugins import DistributionBuilder, load_problem

from calibrated_response_maxent.model import count_joint_states
from harness import case_files, cases_directory
from outcomes import status_counts

DEFAULT_CASES = cases_directory()


@attrs.frozen
class CaseOutcome:
    """One case: ``status`` is ``fitted``, ``refused`` (size guard) or ``error``."""

    name: str
    status: str
    n_states: int
    seconds: float = 0.0
    converged: bool = False
    projected_gradient: float = float("nan")
    message: str = ""


def fit_case(path: Path, options: dict | None = None) -> CaseOutcome:
    """Load, compile and fit one case through ``DistributionBuilder(backend="maxent")``."""
    problem = load_problem(path)
    builder = DistributionBuilder(problem.variables, problem.estimates, backend="maxent", config=options)
    n_states = count_joint_states(builder.compile().n_states)
    if n_states > builder.config.max_states:
        return CaseOutcome(path.name, "refused", n_states)
    started = time.perf_counter()
    try:
        _, info = builder.build(target_variable=problem.target_variable, progress=False)
    except Exception as error:  # a benchmark reports failures instead of stopping at the first
        return CaseOutcome(path.name, "error", n_states, time.perf_counter() - started, message=repr(error))
    return CaseOutcome(
        path.name, "fitted", n_states, time.perf_counter() - started, info["converged"],
        info["diagnostics"]["projected_gradient_norm"],
    )


def run_cases(files: Iterable[Path], options: dict | None = None, echo: bool = False) -> list[CaseOutcome]:
    """:func:`fit_case` for each file, optionally printing one line per case."""
    outcomes = []
    for path in files:
        outcome = fit_case(path, options)
        outcomes.append(outcome)
        if echo:
            print(f"{outcome.name:48s} {outcome.status:8s} {outcome.n_states:>12,d} states "
                  f"{outcome.seconds:8.3f} s  pg {outcome.projected_gradient:.1e} {outcome.message}", flush=True)
    return outcomes


def summarise(outcomes: list[CaseOutcome]) -> dict[str, float | int]:
    """Counts, and median / max seconds over the fitted cases."""
    fitted = [o for o in outcomes if o.status == "fitted"]
    times = [o.seconds for o in fitted]
    return {
        **status_counts(outcomes),
        "median_seconds": statistics.median(times) if times else float("nan"),
        "max_seconds": max(times) if times else float("nan"),
        "total_seconds": sum(times),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, default=DEFAULT_CASES, help="folder of case JSON files")
    parser.add_argument("--limit", type=int, default=None, help="fit only the first N files")
    parser.add_argument("--max-states", type=int, default=None, help="the backend's size guard")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    args = parser.parse_args(argv)
    options = None if args.max_states is None else {"max_states": args.max_states}
    outcomes = run_cases(case_files(args.cases, args.limit), options, echo=not args.quiet)
    summary = summarise(outcomes)
    print(
        f"maxent: {summary['fitted']} of {summary['cases']} cases fitted ({summary['converged']} converged), "
        f"{summary['refused']} refused by the size guard, {summary['errors']} errors; "
        f"seconds per fitted case: median {summary['median_seconds']:.3f}, max {summary['max_seconds']:.3f}, "
        f"total {summary['total_seconds']:.1f}"
    )
    return 0 if summary["errors"] == 0 and summary["converged"] == summary["fitted"] else 1


if __name__ == "__main__":
    sys.exit(main())
