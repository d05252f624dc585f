"""Correlation estimates on the shared cases: fitted or skipped, residuals, effect on P(target), cost.

    python benchmarks/bench_correlations.py [--cases DIR] [--limit N] [--max-enumerated N]
                                            [--smm-sample N] [--quiet] [--out JSON] [--no-report]

Each case is fitted twice with the same backend: with every estimate (the correlation
loop) and with the correlation estimates removed (the plain fit). Reported: how many
correlation estimates were fitted or skipped (every one must be one or the other), the
fitted correlations' gaps to their targets, the change in P(target) the correlations
make, the loop's rounds and its time against the plain fit. Cases where the correlations
link components into an enumerated joint above ``--max-enumerated`` cells are set aside
(``large``) and counted: the exact backend fits them, but each round then takes minutes.
``--smm-sample N`` repeats it with ``smm`` on N cases with fitted correlations, evenly spaced,
timing each build after an untimed one (its jit compilation of each layout is then cached;
``--smm-cold`` times the first builds instead).

Times: wall seconds of ``build`` and its process CPU seconds (steadier on a shared
machine; maxent computes on one thread). Beside the issue's ratio (with / without
correlations) the loop's own split: round 1 (the fit without correlations, inside
the loop) against the plain fit, and the whole loop against its round 1. The
figures go to ``--out`` (JSON) and to the ``correlations`` section of REPORT.md.

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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import cases_directory, is_binary_target, target_value  # noqa: E402

DEFAULT_CASES = cases_directory()
SECTION = "correlations"


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
    cpu_with: float = float("nan")
    cpu_without: float = float("nan")
    loop_seconds: float = float("nan")  # the loop's own wall seconds (info["correlations"]["seconds"])
    first_round_seconds: float = float("nan")
    cells_with: int = 0  # enumerated cells once the correlations link their pairs (maxent's rounds 2+)
    cells_without: int = 0
    message: str = ""


def target_probability(info: dict, target: str, binary: bool) -> float:
    """The target's one number, :func:`harness.target_value` (P(true), or the rescaled mean)."""
    return target_value(info["marginals"][target], info["bin_edges_list"][info["variable_names"].index(target)], binary)


def gap(row: dict) -> float:
    """How far a fitted correlation is from satisfying its estimate (0 when it does)."""
    residual = row["residual"]
    if row["relation"] == "le":
        return max(residual, 0.0)
    if row["relation"] == "ge":
        return max(-residual, 0.0)
    return abs(residual)


def timed_build(problem, estimates, backend: str, options: dict | None):
    """``(info, wall seconds, process CPU seconds)`` of one build."""
    builder = DistributionBuilder(problem.variables, estimates, backend=backend, config=options)
    started, cpu = time.perf_counter(), time.process_time()
    _, info = builder.build(target_variable=problem.target_variable, progress=False)
    return info, time.perf_counter() - started, time.process_time() - cpu


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


def enumerated_cells(problem, with_correlations: bool = True) -> int:
    """Cells the exact backend enumerates, with every correlation's pair a scope (its rounds 2+) or without."""
    from calibrated_response_plugins.constraints import connected_components

    compiled = DistributionBuilder(problem.variables, problem.estimates, backend="maxent").compile()
    scopes = [c.scope for c in compiled.constraints]
    if with_correlations:
        scopes += [c.scope for c in compiled.correlations]
    return sum(math.prod(compiled.n_states[v] for v in variables)
               for variables in connected_components(len(compiled.domains), scopes))


def enumerated_with_correlations(problem) -> int:
    """Cells the exact backend enumerates once every correlation's pair is a scope (the rounds after the first)."""
    return enumerated_cells(problem, True)


def skip_kind(skip: str) -> str:
    """A short category of a correlation's skip reason."""
    for key, kind in (("out of reach", "out of reach"), ("constant", "constant"), ("itself", "self"),
                      ("unknown variable", "unknown variable"), ("max_arity", "max_arity")):
        if key in skip:
            return kind
    return "other"


def run_case(path: Path, backend: str = "maxent", options: dict | None = None,
             max_enumerated: int | None = None, untimed_first: bool = False) -> CorrelationOutcome:
    """Fit one case with and without its correlation estimates.

    ``untimed_first``: build each once before the timed builds, so compilation a backend
    caches within the process (smm's jit of each layout) counts in neither.
    """
    problem = load_problem(path)
    correlation_ids = [e.id for e in problem.estimates if e.estimate_type == "correlation"]
    if not correlation_ids:
        return CorrelationOutcome(path.name, "none")
    cells = enumerated_cells(problem, True)
    if max_enumerated is not None and cells > max_enumerated:
        return CorrelationOutcome(path.name, "large", len(correlation_ids), message=f"{cells:,} cells")
    plain = [e for e in problem.estimates if e.estimate_type != "correlation"]
    try:
        if untimed_first:
            timed_build(problem, problem.estimates, backend, options)
            timed_build(problem, plain, backend, options)
        with_info, with_seconds, with_cpu = timed_build(problem, problem.estimates, backend, options)
        without_info, without_seconds, without_cpu = timed_build(problem, plain, backend, options)
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
    target, binary = problem.target_variable, is_binary_target(problem)
    return CorrelationOutcome(
        path.name, "fitted", len(correlation_ids), n_fitted, n_skipped, unaccounted, skip_kinds,
        tuple(gap(row) for row in rows),
        sum("misses the target" in w for w in with_info["warnings"]),
        abs(target_probability(with_info, target, binary) - target_probability(without_info, target, binary)),
        int(loop.get("rounds", 0)), bool(loop.get("converged", True)), with_seconds, without_seconds,
        with_cpu, without_cpu, float(loop.get("seconds", float("nan"))),
        float(loop.get("first_round_seconds", float("nan"))), cells, enumerated_cells(problem, False),
    )


def _quantiles(values: list[float]) -> str:
    if not values:
        return "none"
    array = np.asarray(values)
    return (f"median {np.median(array):.4g}, p95 {np.quantile(array, 0.95):.4g}, "
            f"max {array.max():.4g}")


def _figures(values: list[float]) -> dict:
    """``{n, median, p95, max}`` of ``values`` (NaN when empty)."""
    array = np.asarray(values, dtype=np.float64)
    if not array.size:
        return {"n": 0, "median": float("nan"), "p95": float("nan"), "max": float("nan")}
    return {"n": int(array.size), "median": float(np.median(array)), "p95": float(np.quantile(array, 0.95)),
            "max": float(array.max())}


def summarise(outcomes: list[CorrelationOutcome]) -> dict:
    """The figures the script prints, as a dict."""
    fitted = [o for o in outcomes if o.status == "fitted"]
    looped = [o for o in fitted if o.n_fitted]
    gaps = [g for o in fitted for g in o.gaps]
    ratios = [o.seconds_with / o.seconds_without for o in looped]
    cpu_ratios = [o.cpu_with / o.cpu_without for o in looped]
    same_joint = [o for o in looped if o.cells_with == o.cells_without]
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
        "gap_figures": _figures(gaps),
        "gaps_below_0.01": sum(g <= 0.01 for g in gaps),
        "gaps_above_0.05": sum(g > 0.05 for g in gaps),
        "unreached_warnings": sum(o.n_unreached_warnings for o in fitted),
        "delta_target": _quantiles([o.delta_target for o in looped]),
        "delta_target_figures": _figures([o.delta_target for o in looped]),
        "delta_target_above_0.01": sum(o.delta_target > 0.01 for o in looped),
        "rounds": _quantiles([float(o.rounds) for o in looped]),
        "rounds_figures": _figures([float(o.rounds) for o in looped]),
        "loop_not_converged": [o.name for o in looped if not o.loop_converged],
        "time_ratio": _quantiles(ratios),
        "time_ratio_figures": _figures(ratios),
        "cpu_ratio_figures": _figures(cpu_ratios),
        "time_ratio_at_most_2": sum(r <= 2.0 for r in ratios),
        "cpu_ratio_at_most_2": sum(r <= 2.0 for r in cpu_ratios),
        # The loop's own split: round 1 (the fit without correlations, on the joint the
        # probes leave) against the plain build, and the loop against its round 1.
        "round1_over_plain_figures": _figures([o.first_round_seconds / o.seconds_without for o in looped]),
        "loop_over_round1_figures": _figures([o.loop_seconds / o.first_round_seconds for o in looped]),
        "rest_share_figures": _figures([1.0 - o.first_round_seconds / o.loop_seconds for o in looped]),
        "same_joint_cases": len(same_joint),
        "same_joint_time_ratio_figures": _figures([o.seconds_with / o.seconds_without for o in same_joint]),
        "grown_joint_time_ratio_figures": _figures([o.seconds_with / o.seconds_without for o in looped
                                                    if o.cells_with != o.cells_without]),
        "cells_growth_figures": _figures([o.cells_with / o.cells_without for o in looped]),
        "total_seconds_with": sum(o.seconds_with for o in looped),
        "total_seconds_without": sum(o.seconds_without for o in looped),
        "total_first_round_seconds": sum(o.first_round_seconds for o in looped),
        "total_cpu_with": sum(o.cpu_with for o in looped),
        "total_cpu_without": sum(o.cpu_without for o in looped),
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
          f"{s['cases_with_loop']} at most 2x (CPU time: {_figure_line(s['cpu_ratio_figures'])}, "
          f"{s['cpu_ratio_at_most_2']} at most 2x); total {s['total_seconds_with']:.1f} s vs "
          f"{s['total_seconds_without']:.1f} s")
    print(f"round 1 / plain fit: {_figure_line(s['round1_over_plain_figures'])}; loop / its round 1: "
          f"{_figure_line(s['loop_over_round1_figures'])}; share of the loop after round 1: "
          f"{_figure_line(s['rest_share_figures'])}")
    print(f"time ratio where the correlations leave the joint as it was ({s['same_joint_cases']} cases): "
          f"{_figure_line(s['same_joint_time_ratio_figures'])}; where they grow it: "
          f"{_figure_line(s['grown_joint_time_ratio_figures'])} (cells with / without: "
          f"{_figure_line(s['cells_growth_figures'])})")


def _figure_line(figures: dict) -> str:
    return f"median {figures['median']:.3g}, p95 {figures['p95']:.3g}, max {figures['max']:.3g}"


def warm_up() -> None:
    """One small fit with and without a correlation, so imports do not count in the first case's times."""
    variables = [{"name": "a", "type": "binary"}, {"name": "b", "type": "binary"}]
    estimates = [{"id": "c", "estimate_type": "correlation", "variable_a": "a", "variable_b": "b", "correlation": 0.3}]
    DistributionBuilder(variables, estimates, backend="maxent").build(progress=False)


def machine_facts() -> dict:
    """CPU, cores and load average (1, 5, 15 min) now."""
    import os
    import platform

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "load average": " ".join(f"{x:.2f}" for x in os.getloadavg())}


def evenly_spaced(items: list, n: int) -> list:
    """``n`` items spread over ``items`` (all of them when there are fewer)."""
    if n >= len(items):
        return list(items)
    return [items[int(i * len(items) / n)] for i in range(n)]


def run_pass(files: list[Path], backend: str, max_enumerated: int | None, quiet: bool,
             untimed_first: bool = False) -> list[CorrelationOutcome]:
    """Every case of ``files`` with ``backend``, printed as it goes."""
    outcomes = []
    for path in files:
        outcome = run_case(path, backend, max_enumerated=max_enumerated, untimed_first=untimed_first)
        outcomes.append(outcome)
        if not quiet and outcome.status != "none":
            print(f"{backend} {outcome.name:44s} {outcome.status:8s} corr {outcome.n_fitted}/{outcome.n_correlations} "
                  f"rounds {outcome.rounds:3d} dP {outcome.delta_target:.4f} "
                  f"t {outcome.seconds_with:.3f}/{outcome.seconds_without:.3f} s "
                  f"(round 1 {outcome.first_round_seconds:.3f} s) {outcome.message}", flush=True)
    return outcomes


def render_section(data: dict) -> str:
    """The ``correlations`` section of REPORT.md from the JSON this script writes."""
    from render import markdown_table

    def cell(figures: dict, key: str, digits: str = ".3g") -> str:
        value = figures.get(key, float("nan"))
        return "-" if value != value else format(value, digits)

    def triple(figures: dict, digits: str = ".3g") -> list[str]:
        return [cell(figures, "median", digits), cell(figures, "p95", digits), cell(figures, "max", digits)]

    parts = [
        "## Correlation estimates",
        "Written by `python benchmarks/bench_correlations.py` (add `--smm-sample N` for smm): every shared case "
        "with correlation estimates is built twice with the same backend, with every estimate (the correlation "
        "loop of docs/correlations.md) and with the correlation estimates removed (the plain fit). Ratios are "
        "per case: wall seconds of `build` with / without, the same in process CPU seconds (steadier while "
        "other work shares the machine), and the loop's own split: its round 1 (the fit without correlations) "
        "against the plain build, and the whole loop against its round 1. The correlations link variables no "
        "other estimate joined, so from round 2 on maxent enumerates a larger joint (cells with / without); "
        "the ratio is also given apart for the cases where the joint stays as it was.",
    ]
    headings = {"maxent": "maxent", "smm": "smm (each build timed after an untimed one: jit compilation cached)",
                "smm_cold": "smm, first builds (jit compilation of each layout included)"}
    for backend, heading in headings.items():
        run = data.get(backend)
        if not run:
            continue
        s = run["summary"]
        machine = run.get("machine", {})
        parts.append(f"### {heading}")
        parts.append(
            f"{s['cases_with_correlations']} of {s['cases']} cases have correlation estimates; {s['fitted_cases']} "
            f"fitted, {s['refused']} refused by the size guard, {len(s['errors'])} errors, {len(s['large'])} set "
            f"aside with a linked joint above {run.get('max_enumerated') or 'no'} cells. Correlation estimates in the "
            f"fitted cases: {s['correlations_in_fitted_cases']}, {s['fitted']} fitted, {s['skipped']} skipped with a "
            f"reason {s['skip_kinds']}, {len(s['unaccounted'])} unaccounted. {s['cases_with_loop']} cases ran the loop; "
            f"not settled: {', '.join(s['loop_not_converged']) or 'none'}. {run.get('date', '?')}, "
            f"{machine.get('cpu', '?')} ({machine.get('cores', '?')} cores), load average at the start / end "
            f"{run.get('load_start', '?')} / {run.get('load_end', '?')}, {run.get('seconds', float('nan')):.0f} s in all."
        )
        rows = [
            ["time with / without correlations (wall)", *triple(s["time_ratio_figures"])],
            ["time with / without correlations (CPU)", *triple(s["cpu_ratio_figures"])],
            ["  where the joint stays as it was "
             f"({s['same_joint_cases']} cases, wall)", *triple(s["same_joint_time_ratio_figures"])],
            ["  where the correlations grow it (wall)", *triple(s["grown_joint_time_ratio_figures"])],
            ["round 1 / plain fit (wall)", *triple(s["round1_over_plain_figures"])],
            ["loop / its round 1 (wall)", *triple(s["loop_over_round1_figures"])],
            ["share of the loop after round 1", *triple(s["rest_share_figures"])],
            ["cells enumerated with / without correlations", *triple(s["cells_growth_figures"])],
            ["rounds", *triple(s["rounds_figures"], "g")],
            ["\\|fitted - target\\| correlation (one-sided for le/ge)", *triple(s["gap_figures"])],
            ["\\|change in P(target)\\| from the correlations", *triple(s["delta_target_figures"])],
        ]
        parts.append(markdown_table(["per case", "median", "p95", "max"], rows))
        parts.append(
            f"At most 2x: {s['time_ratio_at_most_2']} of {s['cases_with_loop']} cases (wall), "
            f"{s['cpu_ratio_at_most_2']} (CPU). Totals: {s['total_seconds_with']:.1f} s with, "
            f"{s['total_seconds_without']:.1f} s without, of which round 1 {s['total_first_round_seconds']:.1f} s. "
            f"Gaps: {s['gaps_below_0.01']} within 0.01, {s['gaps_above_0.05']} above 0.05 "
            f"({s['unreached_warnings']} 'misses the target' warnings); {s['delta_target_above_0.01']} cases move "
            "P(target) by more than 0.01."
        )
    parts.extend(data.get("notes", []))
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    import datetime
    import json
    import os

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, default=DEFAULT_CASES, help="folder of case JSON files")
    parser.add_argument("--limit", type=int, default=None, help="only the first N files")
    parser.add_argument("--max-enumerated", type=int, default=1_000_000,
                        help="set aside cases whose joint with correlations enumerates more cells")
    parser.add_argument("--smm-sample", type=int, default=0,
                        help="also fit this many cases with smm (evenly spaced over those with fitted correlations)")
    parser.add_argument("--skip-maxent", action="store_true",
                        help="only the smm sample (drawn from the cases with correlation estimates), "
                             "keeping the maxent figures --out already holds")
    parser.add_argument("--smm-cold", action="store_true",
                        help="time smm's first builds (jit compilation included) instead of builds after an untimed one")
    parser.add_argument("--quiet", action="store_true", help="print only the summaries")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "correlations.json", help="figures as JSON")
    parser.add_argument("--report", type=Path, default=HERE / "REPORT.md", help="REPORT.md to update")
    parser.add_argument("--no-report", action="store_true", help="leave REPORT.md alone")
    args = parser.parse_args(argv)
    files = sorted(Path(args.cases).glob("*.json"))[: args.limit]
    warm_up()
    data = json.loads(args.out.read_text()) if args.out.exists() else {}
    status = 0

    def record(backend: str, outcomes: list[CorrelationOutcome], started: float, load_start: str) -> dict:
        summary = summarise(outcomes)
        print_summary(backend, summary)
        data[backend] = {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine_facts(), "load_start": load_start, "load_end": machine_facts()["load average"],
            "seconds": time.perf_counter() - started, "max_enumerated": args.max_enumerated,
            "untimed_first": backend == "smm" and not args.smm_cold,
            "summary": summary, "cases": [attrs.asdict(o) for o in outcomes if o.status != "none"],
        }
        return summary

    if args.skip_maxent:
        candidates = [path for path in files if any(
            e.estimate_type == "correlation" for e in load_problem(path).estimates)]
    else:
        started, load = time.perf_counter(), machine_facts()["load average"]
        outcomes = run_pass(files, "maxent", args.max_enumerated, args.quiet)
        summary = record("maxent", outcomes, started, load)
        status = 0 if not summary["unaccounted"] and not summary["errors"] else 1
        names = {o.name for o in outcomes if o.n_fitted}
        candidates = [path for path in files if path.name in names]
    if args.smm_sample:
        started, load = time.perf_counter(), machine_facts()["load average"]
        smm = run_pass(evenly_spaced(candidates, args.smm_sample), "smm", args.max_enumerated, args.quiet,
                       untimed_first=not args.smm_cold)
        record("smm", smm, started, load)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1, default=float) + "\n")
    if not args.no_report:
        from sections import write_section

        write_section(args.report, SECTION, render_section(data))
    os.sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())
