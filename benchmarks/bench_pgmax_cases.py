"""Fit every case with the pgmax backend; report time per case and |P_pgmax(target) - P_maxent(target)|.

Usage: python benchmarks/bench_pgmax_cases.py [CASES_DIR] [--limit N] [--no-maxent]

Times are wall-clock per ``DistributionBuilder.build`` (compile of the
constraints, graph construction, JIT compilation and the fit). The error is
the project's one metric (:func:`harness.target_difference`): P(target = true)
for a binary target, the mean rescaled to [0, 1] for a continuous one; cases are split into tree-structured factor
graphs (where BP is exact) and loopy ones (Bethe approximation). The fits are
:func:`cases_runner.run_cases`' records.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from calibrated_response_plugins.registry import installed_backends

from cases_runner import REFERENCE, CaseResult, run_cases, target_gap
from harness import case_files, cases_directory

DEFAULT_CASES = cases_directory()
BACKEND = "pgmax"
HEADER = f"{'case':32s} {'vars':>4s} {'cons':>4s} {'fac':>4s} {'graph':>5s} {'sec':>6s} {'|dP|':>9s}"


def summarise(label: str, values: list[float]) -> str:
    """Count, mean, median and max of ``values`` on one line."""
    if not values:
        return f"{label}: none"
    return (f"{label}: n={len(values)} mean={statistics.mean(values):.2e} "
            f"median={statistics.median(values):.2e} max={max(values):.2e}")


def graph_kind(result: CaseResult) -> str:
    """``tree`` when pgmax's factor graph is a tree (BP exact), else ``loopy``."""
    return "tree" if result.info.get("factor_graph_is_tree") else "loopy"


def error_text(result: CaseResult, exact: CaseResult | None) -> str:
    """The ``|dP|`` column: the gap to maxent, ``too large`` past its size guard, ``-`` without it."""
    if exact is None:
        return "-"
    if exact.status == "refused":
        return "too large"
    if exact.status == "error":
        return "failed"
    return f"{target_gap(result, exact):.2e}"


def case_line(result: CaseResult, exact: CaseResult | None) -> str:
    """One case's row under :data:`HEADER` (or its failure)."""
    if result.status != "fitted":
        return f"{result.name:32s} FAILED {result.message}"
    info = result.info
    return (f"{result.name:32s} {info['n_variables']:4d} {len(result.residuals):4d} {info['n_factors']:4d} "
            f"{graph_kind(result):>5s} {result.seconds:6.2f} {error_text(result, exact):>9s}")


def failures(results: list[CaseResult]) -> list[str]:
    """``name: message`` of every failed pgmax fit, then of maxent's failures on cases pgmax fitted (marked)."""
    fitted = {r.case for r in results if r.backend == BACKEND and r.status == "fitted"}
    return [f"{r.case}: {r.message}" for r in results if r.backend == BACKEND and r.status == "error"] + [
        f"{r.case} ({r.backend}): {r.message}" for r in results
        if r.backend != BACKEND and r.status == "error" and r.case in fitted]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="?", type=Path, default=DEFAULT_CASES)
    parser.add_argument("--limit", type=int, default=None, help="fit only the first N cases (sorted by name)")
    parser.add_argument("--no-maxent", action="store_true", help="skip the comparison with the exact backend")
    args = parser.parse_args()

    compare = not args.no_maxent and REFERENCE in installed_backends()
    print(HEADER)
    results = run_cases(case_files(args.cases, args.limit), [BACKEND, REFERENCE] if compare else [BACKEND],
                        on_case=lambda row: print(case_line(row[BACKEND], row.get(REFERENCE)), flush=True))
    mine = [r for r in results if r.backend == BACKEND and r.status == "fitted"]
    exact = {r.case: r for r in results if r.backend == REFERENCE}
    errors = {"tree": [], "loopy": []}
    for result in mine:
        if result.case in exact and exact[result.case].status == "fitted":
            errors[graph_kind(result)].append(target_gap(result, exact[result.case]))

    print()
    print(summarise("seconds per case", [r.seconds for r in mine]))
    if compare:
        print(summarise("|P_pgmax(target) - P_maxent(target)| all", errors["tree"] + errors["loopy"]))
        print(summarise("|P_pgmax(target) - P_maxent(target)| tree", errors["tree"]))
        print(summarise("|P_pgmax(target) - P_maxent(target)| loopy", errors["loopy"]))
        too_large = [r for r in mine if exact[r.case].status == "refused"]
        print(f"too large for maxent (not compared): {len(too_large)}")
    not_converged = [r.case for r in mine if not r.converged]
    print(f"not converged: {len(not_converged)} {not_converged[:10]}")
    failed = failures(results)
    print(f"failed: {len(failed)}")
    for line in failed:
        print("  " + line)


if __name__ == "__main__":
    main()

