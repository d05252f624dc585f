"""Fit every shared case with the exact ``maxent`` backend; print time per case and refusals.

    python benchmarks/bench_maxent_cases.py [--cases DIR] [--limit N] [--max-states N]

The fits are :func:`cases_runner.run_cases`' records; :func:`summarise` gives the figures
the script prints.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from cases_runner import CaseResult, run_cases
from harness import case_files, cases_directory
from outcomes import status_counts

DEFAULT_CASES = cases_directory()
BACKEND = "maxent"


def case_line(result: CaseResult) -> str:
    """One case: name, status, joint size, seconds, projected gradient and the message."""
    return (f"{result.case:48s} {result.status:8s} {result.info.get('n_states', 0):>12,d} states "
            f"{result.seconds:8.3f} s  pg {result.info.get('projected_gradient_norm', float('nan')):.1e} "
            f"{result.message}")


def summarise(outcomes: list[CaseResult]) -> dict[str, float | int]:
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
    configs = {} if args.max_states is None else {BACKEND: {"max_states": args.max_states}}
    echo = None if args.quiet else (lambda row: print(case_line(row[BACKEND]), flush=True))
    outcomes = run_cases(case_files(args.cases, args.limit), [BACKEND], configs, on_case=echo)
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
