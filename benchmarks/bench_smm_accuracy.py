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
in a JSON file between runs (the fits are :func:`cases_runner.run_cases`' records; a cache
written before that runner is fitted again).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import attrs
import numpy as np

from cases_runner import REFERENCE, CaseResult, run_cases, target_gap
from harness import case_files, cases_directory

DEFAULT_CASES = cases_directory()
BACKEND = "smm"
TARGET_TOLERANCE = 0.01
RESIDUAL_TOLERANCE = 0.02


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


def residual_gap(fitted: float, exact: float) -> float:
    """``|fitted - exact|``; a ratio smm cannot evaluate (its denominator estimate is 0) is infinitely off."""
    if np.isnan(exact):
        return 0.0 if np.isnan(fitted) else float("inf")
    return float("inf") if np.isnan(fitted) else abs(fitted - exact)


def compare(result: CaseResult, exact: CaseResult) -> CaseAccuracy:
    """Both gaps of one smm fit against the exact fit of the same case (residuals paired in report order)."""
    gaps = [residual_gap(r, e) for r, e in zip(result.residuals, exact.residuals)]
    worst = int(np.argmax(gaps)) if gaps else -1
    return CaseAccuracy(
        result.name,
        result.info["n_variables"],
        target_gap(result, exact),
        float(gaps[worst]) if gaps else 0.0,
        result.residual_ids[worst] if gaps else "",
        result.seconds,
        result.converged,
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


def case_line(result: CaseAccuracy) -> str:
    """One compared case: both gaps, the worst constraint and the smm seconds."""
    return (f"{result.name:40s} vars {result.n_variables:3d}  target {result.target_gap:.4f}  "
            f"residual {result.residual_gap:.4f} ({result.worst_constraint})  {result.seconds:6.2f} s")


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
    results: list[CaseAccuracy] = []
    out = args.out.open("w") if args.out else None

    def record(row: dict[str, CaseResult]) -> None:  # each case as soon as both fits are done
        if row.get(BACKEND) is None or row[BACKEND].status != "fitted":
            return
        results.append(compare(row[BACKEND], row[REFERENCE]))
        if out:
            out.write(json.dumps(attrs.asdict(results[-1])) + "\n")
            out.flush()
        if not args.quiet:
            print(case_line(results[-1]), flush=True)

    fits = run_cases(case_files(args.cases, args.limit, args.only), [BACKEND], {BACKEND: options},
                     args.exact_cache, record, where_reference_fits=True)
    if out:
        out.close()
    refused = [r.name for r in fits if r.backend == REFERENCE and r.status == "refused"]
    failed = [f"{r.name} ({r.backend}: {r.message})" for r in fits if r.status == "error"]
    if refused:
        print(f"refused by the exact backend's size guard: {', '.join(refused)}")
    if failed:
        print(f"failed: {', '.join(failed)}")
    for line in summarise(results):
        print(line)
    ok = all(r.target_gap <= TARGET_TOLERANCE and r.residual_gap <= RESIDUAL_TOLERANCE for r in results)
    return 0 if ok and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
