"""Accuracy of the default ``smm`` fit against the exact ``maxent`` backend on every shared case.

    python benchmarks/bench_smm_accuracy.py [--cases DIR] [--limit N] [--only NAME ...]
        [--seed S] [--set KEY=VALUE ...] [--exact-cache FILE] [--out FILE]

Per case it reports the target gap ``|P_smm(target) - P_maxent(target)|`` (the
project's one metric, :func:`harness.target_difference`: ``P(true)`` of a binary target,
the rescaled mean of a continuous one)
and the residual gap ``max_k |scaled_residual_smm - scaled_residual_maxent|``, plus the
smm fit time. The summary gives median, p95, max and the count within the issue's
tolerances (0.01 on the target, 0.02 on residuals). Cases the exact backend refuses
(size guard) are listed and left out.

The exact answers do not depend on the smm settings, so ``--exact-cache`` keeps them
in a JSON file between runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import attrs
import numpy as np
from calibrated_response_plugins import DistributionBuilder, load_problem

from harness import case_files, cases_directory, is_binary_target, target_difference

DEFAULT_CASES = cases_directory()
TARGET_TOLERANCE = 0.01
RESIDUAL_TOLERANCE = 0.02


@attrs.frozen
class ExactAnswer:
    """What the comparison needs from a maxent fit (JSON-serialisable)."""

    target: list[float]
    scaled_residuals: list[float]
    refused: bool = False


@attrs.frozen
class CaseAccuracy:
    """One case: target gap, residual gap (and the constraint it came from), smm seconds."""

    name: str
    n_variables: int
    target_gap: float
    residual_gap: float
    worst_constraint: str
    seconds: float
    converged: bool


def exact_answer(problem) -> ExactAnswer:
    """The maxent target marginal and scaled residuals, or ``refused`` past its size guard."""
    builder = DistributionBuilder(problem.variables, problem.estimates, backend="maxent")
    try:
        _, info = builder.build(target_variable=problem.target_variable, progress=False)
    except Exception as error:  # the size guard raises; any other failure is reported too
        if "max_states" not in str(error) and "too large" not in str(error).lower():
            raise
        return ExactAnswer([], [], refused=True)
    rows = info["constraint_report"]
    return ExactAnswer(
        [float(p) for p in info["marginals"][problem.target_variable]],
        [float(r["scaled_residual"]) for r in rows],
    )


def residual_gap(fitted: float, exact: float) -> float:
    """``|fitted - exact|``; a ratio smm cannot evaluate (its denominator estimate is 0) is infinitely off."""
    if np.isnan(exact):
        return 0.0 if np.isnan(fitted) else float("inf")
    return float("inf") if np.isnan(fitted) else abs(fitted - exact)


def compare(name: str, problem, exact: ExactAnswer, options: dict) -> CaseAccuracy:
    """Fit one case with smm and measure both gaps against the exact answer."""
    builder = DistributionBuilder(problem.variables, problem.estimates, backend="smm", config=options or None)
    started = time.perf_counter()
    _, info = builder.build(target_variable=problem.target_variable, progress=False)
    seconds = time.perf_counter() - started
    rows = info["constraint_report"]
    gaps = [residual_gap(r["scaled_residual"], e) for r, e in zip(rows, exact.scaled_residuals)]
    worst = int(np.argmax(gaps)) if gaps else -1
    return CaseAccuracy(
        name,
        len(problem.variables),
        target_difference(info["marginals"][problem.target_variable], exact.target,
                          info["bin_edges_list"][info["variable_names"].index(problem.target_variable)],
                          is_binary_target(problem)),
        float(gaps[worst]) if gaps else 0.0,
        rows[worst]["id"] if gaps else "",
        seconds,
        bool(info["converged"]),
    )


def parse_value(text: str):
    """A ``--set`` value: JSON when it parses (numbers, true/false/null), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def distribution(values: list[float], tolerance: float | None = None) -> str:
    v = np.asarray(values, np.float64)
    text = f"median {np.median(v):.4f}  p95 {np.percentile(v, 95):.4f}  max {np.max(v):.4f}"
    if tolerance is not None:
        text += f"  within {tolerance}: {int(np.sum(v <= tolerance))}/{len(v)}"
    return text


def summarise(results: list[CaseAccuracy]) -> list[str]:
    """The summary lines the script prints."""
    if not results:
        return ["no case compared"]
    seconds = [r.seconds for r in results]
    lines = [
        f"cases compared: {len(results)}  (converged flag: {sum(r.converged for r in results)})",
        "|dP(target)| (binary: P(true); continuous: rescaled mean): "
        + distribution([r.target_gap for r in results], TARGET_TOLERANCE),
        "max |scaled residual gap| per case: " + distribution([r.residual_gap for r in results], RESIDUAL_TOLERANCE),
        f"smm seconds per case: {distribution(seconds)}  mean {np.mean(seconds):.3f}  total {np.sum(seconds):.1f}",
    ]
    misses = [r for r in results if r.target_gap > TARGET_TOLERANCE or r.residual_gap > RESIDUAL_TOLERANCE]
    for r in sorted(misses, key=lambda r: r.name):
        lines.append(f"  miss {r.name}: target {r.target_gap:.4f}  residual {r.residual_gap:.4f} ({r.worst_constraint})")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, default=DEFAULT_CASES)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--only", nargs="*", default=None, help="case names to run")
    parser.add_argument("--seed", type=int, default=None, help="smm seed (default: the config's)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="smm config overrides")
    parser.add_argument("--exact-cache", type=Path, default=None, help="JSON file of exact answers")
    parser.add_argument("--out", type=Path, default=None, help="write one JSON line per case here")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    options = {k: parse_value(v) for k, v in (item.split("=", 1) for item in args.set)}
    if args.seed is not None:
        options["seed"] = args.seed
    cache: dict = {}
    if args.exact_cache and args.exact_cache.exists():
        cache = json.loads(args.exact_cache.read_text())
    results, refused = [], []
    out = args.out.open("w") if args.out else None
    for path in case_files(args.cases, args.limit, args.only):
        problem = load_problem(path)
        if path.stem not in cache:
            cache[path.stem] = attrs.asdict(exact_answer(problem))
            if args.exact_cache:
                args.exact_cache.write_text(json.dumps(cache))
        exact = ExactAnswer(**cache[path.stem])
        if exact.refused:
            refused.append(path.stem)
            continue
        result = compare(path.stem, problem, exact, options)
        results.append(result)
        if out:
            out.write(json.dumps(attrs.asdict(result)) + "\n")
            out.flush()
        if not args.quiet:
            print(f"{result.name:40s} vars {result.n_variables:3d}  target {result.target_gap:.4f}  "
                  f"residual {result.residual_gap:.4f} ({result.worst_constraint})  {result.seconds:6.2f} s", flush=True)
    if out:
        out.close()
    if refused:
        print(f"refused by the exact backend's size guard: {', '.join(refused)}")
    for line in summarise(results):
        print(line)
    ok = all(r.target_gap <= TARGET_TOLERANCE and r.residual_gap <= RESIDUAL_TOLERANCE for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
