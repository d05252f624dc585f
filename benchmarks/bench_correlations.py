"""Correlation estimates on the shared cases: fitted or skipped, residuals, effect on P(target), cost.

    python benchmarks/bench_correlations.py [--cases DIR] [--limit N] [--max-enumerated N]
                                            [--smm-sample N] [--quiet]

Each case is fitted twice with the same backend: with every estimate (the correlation
loop) and with the correlation estimates removed (the plain fit). Reported: how many
correlation estimates were fitted or skipped (every one must be one or the other), the
fitted correlations' gaps to their targets, the change in P(target) the correlations
make, the loop's rounds and its time against the plain fit. Cases where the correlations
link components into an enumerated joint above ``--max-enumerated`` cells are set aside
(``large``) and counted: the exact backend fits them, but each round then takes minutes.
``--smm-sample N`` repeats it with ``smm`` on the first N cases with fitted correlations.

Importable: :func:`run_case` returns one :class:`CorrelationOutcome` per case and
:func:`summarise` the figures the script prints.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from pathlib import Path

import attrs
import numpy as np
from calibrated_response_plugins import DistributionBuilder, load_problem

DEFAULT_CASES = Path(__file__).resolve().parents[1].parent / "shared" / "cases"


@attrs.frozen
class CorrelationOutcome:
    """One case: ``status`` is ``fitted``, ``refused`` (size guard), ``large`` (set aside), ``none`` or ``error``."""

    name: str
    status: str
    n_correlations: int = 0
    n_fitted: int = 0
    n_skipped: int = 0
    unaccounted: tuple[str, ...] = ()
    skip_kinds: tuple[str, ...] = ()  # one short reason per skipped correlation
    gaps: tuple[float, ...] = ()  # |fitted - target| (one-sided for le / ge), per fitted correlation
    n_unreached_warnings: int = 0
    delta_target: float = float("nan")  # |P(target) with - P(target) without|
    rounds: int = 0
    loop_converged: bool = False
    seconds_with: float = float("nan")
    seconds_without: float = float("nan")
    message: str = ""


def target_probability(info: dict, target: str) -> float:
    """P(true) for a binary target, else the histogram mean rescaled to [0, 1] by its domain."""
    p = np.asarray(info["marginals"][target])
    edges = np.asarray(info["bin_edges_list"][info["variable_names"].index(target)])
    if p.shape[0] == 2 and list(edges) == [0.0, 0.5, 1.0]:
        return float(p[1])
    centres = 0.5 * (edges[:-1] + edges[1:])
    return float((p @ centres - edges[0]) / (edges[-1] - edges[0]))


def gap(row: dict) -> float:
    """How far a fitted correlation is from satisfying its estimate (0 when it does)."""
    residual = row["residual"]
    if row["relation"] == "le":
        return max(residual, 0.0)
    if row["relation"] == "ge":
        return max(-residual, 0.0)
    return abs(residual)


def timed_build(problem, estimates, backend: str, options: dict | None):
    builder = DistributionBuilder(problem.variables, estimates, backend=backend, config=options)
    started = time.perf_counter()
    _, info = builder.build(target_variable=problem.target_variable, progress=False)
    return info, time.perf_counter() - started


def account(correlation_ids: list[str], info: dict) -> tuple[int, int, tuple[str, ...]]:
    """Fitted and skipped correlation estimates, and the ids that are neither."""
    fitted = [row["id"] for row in info["constraint_report"] if row["estimate_type"] == "correlation"]
    skipped_ids = [s.split(":", 1)[0] for s in info["skipped_constraints"]]
    remaining_fitted, remaining_skipped, unaccounted = list(fitted), list(skipped_ids), []
    n_fitted = n_skipped = 0
    for cid in correlation_ids:
        if cid in remaining_fitted:
            remaining_fitted.remove(cid)
            n_fitted += 1
        elif cid in remaining_skipped:
            remaining_skipped.remove(cid)
            n_skipped += 1
        else:
            unaccounted.append(cid)
    return n_fitted, n_skipped, tuple(unaccounted)


def enumerated_with_correlations(problem) -> int:
    """Cells the exact backend enumerates once every correlation's pair is a scope (the rounds after the first)."""
    from calibrated_response_plugins.constraints import connected_components

    compiled = DistributionBuilder(problem.variables, problem.estimates, backend="maxent").compile()
    scopes = [c.scope for c in compiled.constraints] + [c.scope for c in compiled.correlations]
    return sum(math.prod(compiled.n_states[v] for v in variables)
               for variables in connected_components(len(compiled.domains), scopes))


def skip_kind(skip: str) -> str:
    """A short category of a correlation's skip reason."""
    for key, kind in (("out of reach", "out of reach"), ("constant", "constant"), ("itself", "self"),
                      ("unknown variable", "unknown variable"), ("max_arity", "max_arity")):
        if key in skip:
            return kind
    return "other"


def run_case(path: Path, backend: str = "maxent", options: dict | None = None,
             max_enumerated: int | None = None) -> CorrelationOutcome:
    """Fit one case with and without its correlation estimates."""
    problem = load_problem(path)
    correlation_ids = [e.id for e in problem.estimates if e.estimate_type == "correlation"]
    if not correlation_ids:
        return CorrelationOutcome(path.name, "none")
    if max_enumerated is not None:
        cells = enumerated_with_correlations(problem)
        if cells > max_enumerated:
            return CorrelationOutcome(path.name, "large", len(correlation_ids), message=f"{cells:,} cells")
    plain = [e for e in problem.estimates if e.estimate_type != "correlation"]
    try:
        with_info, with_seconds = timed_build(problem, problem.estimates, backend, options)
        without_info, without_seconds = timed_build(problem, plain, backend, options)
    except ValueError as error:
        if "max_states" in str(error):
            return CorrelationOutcome(path.name, "refused", len(correlation_ids), message=str(error)[:80])
        return CorrelationOutcome(path.name, "error", len(correlation_ids), message=repr(error))
    except Exception as error:  # a benchmark reports failures instead of stopping at the first
        return CorrelationOutcome(path.name, "error", len(correlation_ids), message=repr(error))
    n_fitted, n_skipped, unaccounted = account(correlation_ids, with_info)
    skip_kinds = tuple(skip_kind(s) for s in with_info["skipped_constraints"]
                       if s.split(":", 1)[0] in correlation_ids)
    rows = [row for row in with_info["constraint_report"] if row["estimate_type"] == "correlation"]
    loop = with_info.get("correlations", {})
    target = problem.target_variable
    return CorrelationOutcome(
        path.name, "fitted", len(correlation_ids), n_fitted, n_skipped, unaccounted, skip_kinds,
        tuple(gap(row) for row in rows),
        sum("misses the target" in w for w in with_info["warnings"]),
        abs(target_probability(with_info, target) - target_probability(without_info, target)),
        int(loop.get("rounds", 0)), bool(loop.get("converged", True)), with_seconds, without_seconds,
    )


def _quantiles(values: list[float]) -> str:
    if not values:
        return "none"
    array = np.asarray(values)
    return (f"median {np.median(array):.4f}, 90% {np.quantile(array, 0.9):.4f}, "
            f"max {array.max():.4f}")


def summarise(outcomes: list[CorrelationOutcome]) -> dict:
    """The figures the script prints, as a dict."""
    fitted = [o for o in outcomes if o.status == "fitted"]
    looped = [o for o in fitted if o.n_fitted]
    gaps = [g for o in fitted for g in o.gaps]
    ratios = [o.seconds_with / o.seconds_without for o in looped]
    return {
        "cases": len(outcomes),
        "cases_with_correlations": sum(o.status != "none" for o in outcomes),
        "fitted_cases": len(fitted),
        "refused": sum(o.status == "refused" for o in outcomes),
        "large": [f"{o.name} ({o.n_correlations} correlations, {o.message})" for o in outcomes if o.status == "large"],
        "errors": [f"{o.name}: {o.message}" for o in outcomes if o.status == "error"],
        "correlations": sum(o.n_correlations for o in outcomes),
        "correlations_in_fitted_cases": sum(o.n_correlations for o in fitted),
        "fitted": sum(o.n_fitted for o in fitted),
        "skipped": sum(o.n_skipped for o in fitted),
        "skip_kinds": dict(sorted(Counter(k for o in fitted for k in o.skip_kinds).items())),
        "unaccounted": [f"{o.name}: {i}" for o in fitted for i in o.unaccounted],
        "gaps": _quantiles(gaps),
        "gaps_below_0.01": sum(g <= 0.01 for g in gaps),
        "gaps_above_0.05": sum(g > 0.05 for g in gaps),
        "unreached_warnings": sum(o.n_unreached_warnings for o in fitted),
        "delta_target": _quantiles([o.delta_target for o in looped]),
        "delta_target_above_0.01": sum(o.delta_target > 0.01 for o in looped),
        "rounds": _quantiles([float(o.rounds) for o in looped]),
        "loop_not_converged": [o.name for o in looped if not o.loop_converged],
        "time_ratio": _quantiles(ratios),
        "time_ratio_at_most_2": sum(r <= 2.0 for r in ratios),
        "total_seconds_with": sum(o.seconds_with for o in looped),
        "total_seconds_without": sum(o.seconds_without for o in looped),
        "cases_with_loop": len(looped),
    }


def print_summary(backend: str, summary: dict) -> None:
    s = summary
    print(f"== {backend}: {s['cases_with_correlations']} of {s['cases']} cases have correlation estimates; "
          f"{s['fitted_cases']} fitted, {s['refused']} refused by the size guard, {len(s['errors'])} errors, "
          f"{len(s['large'])} set aside as large: {'; '.join(s['large']) or 'none'}")
    for line in s["errors"]:
        print(f"   error {line}")
    print(f"correlation estimates: {s['correlations']} in all, {s['correlations_in_fitted_cases']} in fitted cases: "
          f"{s['fitted']} fitted, {s['skipped']} skipped with a reason {s['skip_kinds']}, "
          f"{len(s['unaccounted'])} unaccounted")
    for line in s["unaccounted"]:
        print(f"   unaccounted {line}")
    print(f"|fitted - target| correlation (one-sided for le/ge): {s['gaps']}; "
          f"{s['gaps_below_0.01']} within 0.01, {s['gaps_above_0.05']} above 0.05 "
          f"({s['unreached_warnings']} 'misses the target' warnings)")
    print(f"|change in P(target)| from the correlations: {s['delta_target']}; "
          f"{s['delta_target_above_0.01']} of {s['cases_with_loop']} cases above 0.01")
    print(f"rounds: {s['rounds']}; loop not settled in: {s['loop_not_converged'] or 'none'}")
    print(f"time with / without correlations per case: {s['time_ratio']}; {s['time_ratio_at_most_2']} of "
          f"{s['cases_with_loop']} at most 2x; total {s['total_seconds_with']:.1f} s vs "
          f"{s['total_seconds_without']:.1f} s")


def warm_up() -> None:
    """One small fit with and without a correlation, so imports do not count in the first case's times."""
    variables = [{"name": "a", "type": "binary"}, {"name": "b", "type": "binary"}]
    estimates = [{"id": "c", "estimate_type": "correlation", "variable_a": "a", "variable_b": "b", "correlation": 0.3}]
    DistributionBuilder(variables, estimates, backend="maxent").build(progress=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, default=DEFAULT_CASES, help="folder of case JSON files")
    parser.add_argument("--limit", type=int, default=None, help="only the first N files")
    parser.add_argument("--max-enumerated", type=int, default=1_000_000,
                        help="set aside cases whose joint with correlations enumerates more cells")
    parser.add_argument("--smm-sample", type=int, default=0, help="also fit this many cases with smm")
    parser.add_argument("--quiet", action="store_true", help="print only the summaries")
    args = parser.parse_args(argv)
    files = sorted(Path(args.cases).glob("*.json"))[: args.limit]
    warm_up()
    outcomes = []
    for path in files:
        outcome = run_case(path, "maxent", max_enumerated=args.max_enumerated)
        outcomes.append(outcome)
        if not args.quiet and outcome.status != "none":
            print(f"{outcome.name:48s} {outcome.status:8s} corr {outcome.n_fitted}/{outcome.n_correlations} "
                  f"rounds {outcome.rounds:3d} dP {outcome.delta_target:.4f} "
                  f"t {outcome.seconds_with:.3f}/{outcome.seconds_without:.3f} s {outcome.message}", flush=True)
    summary = summarise(outcomes)
    print_summary("maxent", summary)
    status = 0 if not summary["unaccounted"] and not summary["errors"] else 1
    if args.smm_sample:
        sample = [files[[p.name for p in files].index(o.name)] for o in outcomes if o.n_fitted][: args.smm_sample]
        smm = []
        for path in sample:
            outcome = run_case(path, "smm")
            smm.append(outcome)
            if not args.quiet:
                print(f"smm {outcome.name:44s} {outcome.status:8s} rounds {outcome.rounds:3d} "
                      f"dP {outcome.delta_target:.4f} t {outcome.seconds_with:.1f}/{outcome.seconds_without:.1f} s "
                      f"{outcome.message}", flush=True)
        print_summary("smm", summarise(smm))
    return status


if __name__ == "__main__":
    sys.exit(main())
