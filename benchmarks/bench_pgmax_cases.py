"""Fit every case with the pgmax backend; report time per case and |P_pgmax(target) - P_maxent(target)|.

Usage: python benchmarks/bench_pgmax_cases.py [CASES_DIR] [--limit N] [--no-maxent]

Times are wall-clock per ``DistributionBuilder.build`` (compile of the
constraints, graph construction, JIT compilation and the fit). The error is
the project's one metric (:func:`harness.target_difference`): P(target = true)
for a binary target, the mean rescaled to [0, 1] for a continuous one; cases are split into tree-structured factor
graphs (where BP is exact) and loopy ones (Bethe approximation).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path


from calibrated_response_plugins.builder import DistributionBuilder
from calibrated_response_plugins.io import load_problem
from calibrated_response_plugins.registry import installed_backends

from harness import case_files, cases_directory, is_binary_target, target_difference

DEFAULT_CASES = cases_directory()


def fit_case(path: Path, backend: str):
    problem = load_problem(path)
    target = problem.target_variable or problem.variables[0].name
    start = time.perf_counter()
    _, info = DistributionBuilder(problem.variables, problem.estimates, backend=backend).build(
        target_variable=target, progress=False
    )
    return info, target, time.perf_counter() - start


def summarise(label: str, values: list[float]) -> str:
    if not values:
        return f"{label}: none"
    return (f"{label}: n={len(values)} mean={statistics.mean(values):.2e} "
            f"median={statistics.median(values):.2e} max={max(values):.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="?", type=Path, default=DEFAULT_CASES)
    parser.add_argument("--limit", type=int, default=None, help="fit only the first N cases (sorted by name)")
    parser.add_argument("--no-maxent", action="store_true", help="skip the comparison with the exact backend")
    args = parser.parse_args()

    paths = case_files(args.cases, args.limit)
    compare = not args.no_maxent and "maxent" in installed_backends()
    times, errors = [], {"tree": [], "loopy": []}
    not_converged, failures, too_large = [], [], []
    print(f"{'case':32s} {'vars':>4s} {'cons':>4s} {'fac':>4s} {'graph':>5s} {'sec':>6s} {'|dP|':>9s}")
    for path in paths:
        try:
            info, target, seconds = fit_case(path, "pgmax")
        except Exception as error:  # a benchmark reports every case, failures included
            failures.append(f"{path.name}: {type(error).__name__}: {error}")
            print(f"{path.stem:32s} FAILED {type(error).__name__}: {error}")
            continue
        times.append(seconds)
        kind = "tree" if info["diagnostics"].get("factor_graph_is_tree") else "loopy"
        if not info["converged"]:
            not_converged.append(path.name)
        error_text = "-"
        if compare:
            try:
                exact, _, _ = fit_case(path, "maxent")
            except ValueError:  # the joint is too large to enumerate
                too_large.append(path.name)
                error_text = "too large"
            else:
                edges = info["bin_edges_list"][info["variable_names"].index(target)]
                error = target_difference(info["marginals"][target], exact["marginals"][target], edges,
                                          is_binary_target(load_problem(path)))
                errors[kind].append(error)
                error_text = f"{error:.2e}"
        print(f"{path.stem:32s} {info['n_variables']:4d} {len(info['constraint_report']):4d} "
              f"{info['n_factors']:4d} {kind:>5s} {seconds:6.2f} {error_text:>9s}")

    print()
    print(summarise("seconds per case", times))
    if compare:
        print(summarise("|P_pgmax(target) - P_maxent(target)| all", errors["tree"] + errors["loopy"]))
        print(summarise("|P_pgmax(target) - P_maxent(target)| tree", errors["tree"]))
        print(summarise("|P_pgmax(target) - P_maxent(target)| loopy", errors["loopy"]))
    if compare:
        print(f"too large for maxent (not compared): {len(too_large)}")
    print(f"not converged: {len(not_converged)} {not_converged[:10]}")
    print(f"failed: {len(failures)}")
    for line in failures:
        print("  " + line)


if __name__ == "__main__":
    main()
