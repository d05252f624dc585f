"""Real-shaped stress problems, and a comparison of a backend against the exact ``maxent`` on them.

    python benchmarks/stress.py --seeds 100000:100500 [--backend smm] [--set KEY=VALUE ...]
        [--jsonl FILE] [--out benchmarks/results/stress.json] [--markdown FILE] [--summarise-only]

A problem is drawn from one seed, shaped like the elicited problems of the shared cases:

- 6-9 variables, 3-5 of them continuous on wide ranges (counts in the millions, prices,
  percentages), the rest binary; the target is variable 0.
- 20-40 estimates: probabilities of thresholds and of binary states, expectations,
  conditional probabilities and conditional expectations with one or two conditions
  (so scopes of at most 3 variables), some ``le`` / ``ge``, some with an ``sd``.
- The numbers come from a hidden joint (a Gaussian copula with random correlations, so
  the estimates are roughly coherent, as an elicited set is), rounded as a person would,
  then damaged the ways real sets are: conflicting conditionals (a conditional flipped
  or pushed to the far side), near-0/1 conditionals, and rare conditions (a threshold at
  the 95-99th percentile of its variable).

Continuous variables get ``max_bins`` 21 (the default) unless the dense joint would pass
``JOINT_BUDGET`` states; then the largest bin count that fits, so every problem has an
exact answer to compare against. The comparison fits each problem with ``maxent`` and
the backend under test (default settings unless ``--set``) and reports, per problem,
``|dP(target)|`` (the one metric of the case benchmarks, :func:`harness.target_difference`:
``P(true)`` of a binary target, the mean of a continuous one rescaled to [0, 1] by its
domain), the largest marginal gap over every variable's bins, the residual gap
``max_k |scaled_residual - exact scaled_residual|``, both fit times, the ``converged``
flag and the warnings; the summary gives median, p95 and max of each.

Seeds below ``REPORT_SEEDS_START`` are for development; the reported run uses seeds from
it on, which no setting was tuned on.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import target_difference  # noqa: E402

TARGET_TOLERANCE = 0.01
MARGINAL_TOLERANCE = 0.02
RESIDUAL_TOLERANCE = 0.02
JOINT_BUDGET = 3_000_000  # the real 7-8 variable problems have 1.5-3.1 million joint states
DEFAULT_BINS = 21
REPORT_SEEDS_START = 100_000
HIDDEN_SAMPLES = 20_000

# (lower, span) families of continuous ranges seen in the shared cases.
RANGE_FAMILIES = (
    lambda rng: (0.0, 100.0),  # a percentage or an index
    lambda rng: (float(_round_sig(10 ** rng.uniform(5, 6.5), 1)), float(_round_sig(10 ** rng.uniform(6, 7.5), 1))),
    lambda rng: (float(_round_sig(10 ** rng.uniform(3, 4.5), 1)), float(_round_sig(10 ** rng.uniform(4, 5.5), 1))),
    lambda rng: (0.0, float(_round_sig(10 ** rng.uniform(1, 3), 1))),  # a small count
)


def _round_sig(value: float, digits: int = 2) -> float:
    """``value`` rounded to ``digits`` significant digits (as a person would state it)."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - int(math.floor(math.log10(abs(value)))))


def _round_probability(p: float) -> float:
    """To the nearest 0.05 inside [0.05, 0.95]; to 0.01 nearer 0 or 1 (people say 0.02, 0.98)."""
    if 0.05 <= p <= 0.95:
        return round(round(p * 20) / 20, 2)
    return round(min(max(p, 0.01), 0.99), 2)


@attrs.frozen
class StressProblem:
    """One drawn problem in the upstream JSON shape, with the facts the report groups by."""

    seed: int
    variables: tuple = attrs.field(converter=tuple)
    estimates: tuple = attrs.field(converter=tuple)
    max_bins: int
    tags: tuple = attrs.field(converter=tuple)  # damage applied: conflict, extreme, rare, ...

    @property
    def target_variable(self) -> str:
        return self.variables[0]["name"]

    @property
    def n_joint_states(self) -> int:
        return math.prod(2 if v["type"] == "binary" else self.max_bins for v in self.variables)

    def to_json(self) -> dict[str, Any]:
        """The problem as a file ``calibrated-response fit`` reads."""
        return {
            "question": f"stress problem {self.seed}",
            "target_variable": self.target_variable,
            "variables": list(self.variables),
            "estimates": list(self.estimates),
            "meta": {"seed": self.seed, "max_bins": self.max_bins, "tags": list(self.tags)},
        }


@attrs.frozen
class Hidden:
    """The hidden joint the numbers come from: samples of every variable."""

    variables: tuple
    samples: np.ndarray  # [HIDDEN_SAMPLES, V]: 0/1 for a binary, a value in its range otherwise

    def column(self, index: int) -> np.ndarray:
        return self.samples[:, index]


def _variables(rng: np.random.Generator) -> list[dict[str, Any]]:
    n = int(rng.integers(6, 10))
    n_continuous = int(rng.integers(3, 6))
    continuous = set(rng.choice(n, size=n_continuous, replace=False).tolist())
    variables = []
    for i in range(n):
        if i in continuous:
            lower, span = RANGE_FAMILIES[int(rng.integers(len(RANGE_FAMILIES)))](rng)
            variables.append({"name": f"x{i}_level", "description": f"continuous quantity {i}",
                              "type": "continuous", "lower_bound": lower, "upper_bound": lower + span})
        else:
            variables.append({"name": f"b{i}_event", "description": f"binary event {i}", "type": "binary"})
    return variables


def _hidden(rng: np.random.Generator, variables: list[dict[str, Any]]) -> Hidden:
    """A Gaussian copula with random correlations; binaries cut at a random level, continuous skewed."""
    n = len(variables)
    factor = rng.normal(size=(n, 2)) * rng.uniform(0.3, 1.2)
    covariance = factor @ factor.T + np.diag(rng.uniform(0.3, 1.0, size=n))
    scale = np.sqrt(np.diag(covariance))
    z = rng.multivariate_normal(np.zeros(n), covariance / np.outer(scale, scale), size=HIDDEN_SAMPLES)
    columns = []
    for i, v in enumerate(variables):
        u = 0.5 * (1.0 + np.vectorize(math.erf)(z[:, i] / math.sqrt(2.0)))
        if v["type"] == "binary":
            columns.append((u > rng.uniform(0.15, 0.85)).astype(np.float64))
        else:
            shape = rng.uniform(0.4, 3.0)  # skew: most mass low (counts) or high
            lo, hi = v["lower_bound"], v["upper_bound"]
            columns.append(lo + (hi - lo) * u**shape)
    return Hidden(tuple(variables), np.column_stack(columns))


def _proposition(rng: np.random.Generator, hidden: Hidden, i: int, rare: bool = False) -> tuple[dict, np.ndarray]:
    """An event on variable ``i`` and its indicator over the hidden samples."""
    v = hidden.variables[i]
    x = hidden.column(i)
    if v["type"] == "binary":
        value = bool(rng.integers(2)) if not rare else bool(x.mean() < 0.5)
        return ({"proposition_type": "equality", "variable": v["name"], "variable_type": "binary", "value": value},
                x == float(value))
    lo, hi = v["lower_bound"], v["upper_bound"]
    quantile = rng.uniform(0.95, 0.99) if rare else rng.uniform(0.2, 0.8)
    threshold = float(_round_sig(float(np.quantile(x, quantile)), 2))
    threshold = min(max(threshold, lo + 0.02 * (hi - lo)), hi - 0.02 * (hi - lo))
    is_lower = bool(rare or rng.integers(2))
    event = x > threshold if is_lower else x < threshold
    return ({"proposition_type": "inequality", "variable": v["name"], "variable_type": "continuous",
             "threshold": threshold, "is_lower_bound": is_lower}, event)


def _expected_value(v: dict[str, Any], values: np.ndarray) -> float:
    lo, hi = v["lower_bound"], v["upper_bound"]
    mean = float(values.mean()) if values.size else 0.5 * (lo + hi)
    return float(min(max(_round_sig(mean, 2), lo + 0.03 * (hi - lo)), hi - 0.03 * (hi - lo)))


def _conditions(rng: np.random.Generator, hidden: Hidden, avoid: int, rare_rate: float) -> tuple[list, np.ndarray, list]:
    n = len(hidden.variables)
    others = [j for j in range(n) if j != avoid]
    count = 1 if rng.uniform() < 0.7 else 2
    chosen = rng.choice(others, size=count, replace=False).tolist()
    props, mask, rare = [], np.ones(HIDDEN_SAMPLES, bool), []
    for j in chosen:
        is_rare = rng.uniform() < rare_rate
        prop, event = _proposition(rng, hidden, j, rare=is_rare)
        props.append(prop)
        mask &= event
        rare.append(is_rare)
    return props, mask, rare


def _sd(rng: np.random.Generator, kind: str, v: dict[str, Any] | None) -> float | None:
    if rng.uniform() > 0.15:
        return None
    if kind == "probability":
        return float(round(rng.uniform(0.2, 1.0), 2))  # log-odds, as upstream states it
    return float(_round_sig((v["upper_bound"] - v["lower_bound"]) * rng.uniform(0.03, 0.15), 2))


def _relation(rng: np.random.Generator, value: float, kind: str, v: dict[str, Any] | None) -> tuple[str, float]:
    """Mostly ``eq``; 12% a bound a little looser or tighter than the hidden value."""
    draw = rng.uniform()
    if draw > 0.12:
        return "eq", value
    relation = "ge" if draw < 0.06 else "le"
    shift = rng.uniform(-0.05, 0.1) * (1.0 if kind == "probability" else v["upper_bound"] - v["lower_bound"])
    loose = value - shift if relation == "ge" else value + shift
    if kind == "probability":
        return relation, _round_probability(loose)
    lo, hi = v["lower_bound"], v["upper_bound"]
    return relation, float(min(max(_round_sig(loose, 2), lo + 0.03 * (hi - lo)), hi - 0.03 * (hi - lo)))


def _damaged_probability(rng: np.random.Generator, p: float, conflict: float, tags: set) -> float:
    """A conditional's stated probability: flipped, pushed to 0/1, or the hidden one."""
    draw = rng.uniform()
    if draw < conflict:
        tags.add("conflict")
        return _round_probability(1.0 - p if abs(p - 0.5) > 0.15 else (0.9 if p < 0.5 else 0.1))
    if draw < conflict + 0.08:
        tags.add("extreme")
        return float(rng.choice([0.01, 0.02, 0.03, 0.97, 0.98, 0.99]))
    return _round_probability(p)


def _estimate(rng: np.random.Generator, hidden: Hidden, k: int, conflict: float, rare_rate: float,
              tags: set) -> dict[str, Any] | None:
    """One estimate of a randomly drawn kind (None when its condition never holds in the hidden samples)."""
    n = len(hidden.variables)
    kinds = ("probability", "expectation", "conditional_probability", "conditional_expectation")
    kind = kinds[int(rng.choice(4, p=[0.25, 0.12, 0.45, 0.18]))]
    i = 0 if rng.uniform() < 0.3 else int(rng.integers(n))
    v = hidden.variables[i]
    if "expectation" in kind and v["type"] == "binary":
        kind = kind.replace("expectation", "probability")
    estimate: dict[str, Any] = {"estimate_type": kind, "id": f"e{k:02d}_{kind}", "n": None}
    mask = np.ones(HIDDEN_SAMPLES, bool)
    if kind.startswith("conditional"):
        conditions, mask, rare = _conditions(rng, hidden, i, rare_rate)
        if mask.sum() < 5:
            return None
        if any(rare):
            tags.add("rare")
        estimate["conditions"] = conditions
    if kind.endswith("probability"):
        prop, event = _proposition(rng, hidden, i)
        p = float(event[mask].mean())
        stated = _damaged_probability(rng, p, conflict, tags) if kind.startswith("conditional") else _round_probability(p)
        relation, stated = _relation(rng, stated, "probability", None)
        estimate.update(proposition=prop, probability=stated, relation=relation, sd=_sd(rng, "probability", None))
    else:
        value = _expected_value(v, hidden.column(i)[mask])
        if kind.startswith("conditional") and rng.uniform() < conflict:
            tags.add("conflict")  # the stated mean from the far side of the range
            value = _expected_value(v, np.array([v["lower_bound"] + v["upper_bound"] - value]))
        relation, value = _relation(rng, value, "expectation", v)
        estimate.update(variable=v["name"], expected_value=value, relation=relation, sd=_sd(rng, "expectation", v))
    if estimate["relation"] != "eq":
        tags.add("inequality")
    if estimate["sd"] is not None:
        tags.add("sd")
    return estimate


def bins_for(variables: list[dict[str, Any]], budget: int = JOINT_BUDGET) -> int:
    """``DEFAULT_BINS``, or the largest bin count whose dense joint fits ``budget``."""
    n_binary = sum(v["type"] == "binary" for v in variables)
    n_continuous = len(variables) - n_binary
    bins = DEFAULT_BINS
    while bins > 2 and bins**n_continuous * 2**n_binary > budget:
        bins -= 1
    return bins


#: The rates of conflicting conditionals a problem draws from: none, some, many.
CONFLICT_RATES = (0.0, 0.08, 0.25)


def stress_problem(seed: int, conflict: float | None = None) -> StressProblem:
    """The stress problem of ``seed`` (deterministic).

    ``conflict``: the rate of conflicting conditionals instead of the drawn one (the
    rest of the problem is drawn as before), to generate many members of the class
    ``CONFLICT_RATES[-1]`` makes: large multipliers, peaked pair conditionals.
    """
    rng = np.random.default_rng(seed)
    variables = _variables(rng)
    hidden = _hidden(rng, variables)
    drawn = float(rng.choice(CONFLICT_RATES))
    conflict = drawn if conflict is None else float(conflict)
    rare_rate = float(rng.choice([0.0, 0.1, 0.25]))
    n_estimates = int(rng.integers(20, 41))
    tags: set = set()
    estimates: list[dict[str, Any]] = []
    k = 0
    while len(estimates) < n_estimates:
        estimate = _estimate(rng, hidden, k, conflict, rare_rate, tags)
        k += 1
        if estimate is not None:
            estimates.append(estimate)
    return StressProblem(seed, variables, estimates, bins_for(variables), sorted(tags))


# ------------------------------------------------------------- the comparison


@attrs.frozen
class StressOutcome:
    """One problem fitted by maxent and by the backend under test."""

    seed: int
    n_variables: int
    n_continuous: int
    n_estimates: int
    n_joint_states: int
    max_bins: int
    tags: list
    target_gap: float
    marginal_gap: float
    residual_gap: float
    worst_constraint: str
    exact_max_scaled_residual: float  # how much the estimates conflict
    exact_max_lambda: float
    exact_seconds: float
    seconds: float
    converged: bool
    exact_converged: bool
    backend: str
    warnings: list

    @property
    def within(self) -> bool:
        return (self.target_gap <= TARGET_TOLERANCE and self.marginal_gap <= MARGINAL_TOLERANCE
                and self.residual_gap <= RESIDUAL_TOLERANCE)

    @property
    def flagged(self) -> bool:
        """Not converged, with a warning saying so."""
        return not self.converged and bool(self.warnings)


def target_gap(problem: StressProblem, fitted: dict, exact: dict) -> float:
    """``|dP(target)|`` of two fits' ``info`` (:func:`harness.target_difference`, on the exact fit's bin edges)."""
    target = problem.target_variable
    edges = exact["bin_edges_list"][exact["variable_names"].index(target)]
    binary = problem.variables[0]["type"] == "binary"
    return target_difference(fitted["marginals"][target], exact["marginals"][target], edges, binary)


def _finite_gap(a: float, b: float) -> float:
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)) or (isinstance(b, float) and math.isnan(b)):
        return 0.0 if (a is None or math.isnan(a)) == (b is None or math.isnan(b)) else float("inf")
    return abs(float(a) - float(b))


def _fit(problem: StressProblem, backend: str, options: dict[str, Any]) -> tuple[dict, float]:
    from calibrated_response_plugins import DistributionBuilder

    config = {"max_bins": problem.max_bins, **options}
    builder = DistributionBuilder(list(problem.variables), list(problem.estimates), backend=backend, config=config)
    started = time.perf_counter()
    _, info = builder.build(target_variable=problem.target_variable, progress=False)
    return info, time.perf_counter() - started


def compare(problem: StressProblem, backend: str = "smm", options: dict[str, Any] | None = None) -> StressOutcome:
    """Fit ``problem`` with maxent and ``backend``; measure the gaps."""
    exact, exact_seconds = _fit(problem, "maxent", {})
    fitted, seconds = _fit(problem, backend, dict(options or {}))
    marginal_gap = max(
        float(np.max(np.abs(np.asarray(fitted["marginals"][name]) - np.asarray(p))))
        for name, p in exact["marginals"].items()
    )
    rows, exact_rows = fitted["constraint_report"], exact["constraint_report"]
    gaps = [_finite_gap(r["scaled_residual"], e["scaled_residual"]) for r, e in zip(rows, exact_rows)]
    worst = int(np.argmax(gaps)) if gaps else -1
    exact_residuals = [abs(r["scaled_residual"]) for r in exact_rows if r["scaled_residual"] is not None
                       and math.isfinite(r["scaled_residual"])]
    return StressOutcome(
        seed=problem.seed,
        n_variables=len(problem.variables),
        n_continuous=sum(v["type"] == "continuous" for v in problem.variables),
        n_estimates=len(problem.estimates),
        n_joint_states=problem.n_joint_states,
        max_bins=problem.max_bins,
        tags=list(problem.tags),
        target_gap=target_gap(problem, fitted, exact),
        marginal_gap=marginal_gap,
        residual_gap=float(gaps[worst]) if gaps else 0.0,
        worst_constraint=rows[worst]["id"] if gaps else "",
        exact_max_scaled_residual=float(max(exact_residuals, default=0.0)),
        exact_max_lambda=float(max((abs(r["lambda"]) for r in exact_rows), default=0.0)),
        exact_seconds=exact_seconds,
        seconds=seconds,
        converged=bool(fitted["converged"]),
        exact_converged=bool(exact["converged"]),
        backend=str(fitted["backend"]),
        warnings=[str(w) for w in fitted["warnings"]],
    )


def _distribution(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, np.float64)
    if v.size == 0:
        return {"median": float("nan"), "p95": float("nan"), "max": float("nan")}
    return {"median": float(np.median(v)), "p95": float(np.percentile(v, 95)), "max": float(np.max(v))}


def summarise(outcomes: list[StressOutcome]) -> dict[str, Any]:
    """Distributions of every gap and time, and the problems neither within tolerance nor flagged."""
    misses = [o for o in outcomes if not o.within]
    unflagged = [o for o in misses if not o.flagged]
    return {
        "n_problems": len(outcomes),
        "seeds": [min((o.seed for o in outcomes), default=None), max((o.seed for o in outcomes), default=None)],
        "tolerances": {"target": TARGET_TOLERANCE, "marginal": MARGINAL_TOLERANCE, "residual": RESIDUAL_TOLERANCE},
        "target_gap": _distribution([o.target_gap for o in outcomes]),
        "marginal_gap": _distribution([o.marginal_gap for o in outcomes]),
        "residual_gap": _distribution([o.residual_gap for o in outcomes]),
        "seconds": _distribution([o.seconds for o in outcomes]),
        "exact_seconds": _distribution([o.exact_seconds for o in outcomes]),
        "n_within": len(outcomes) - len(misses),
        "n_converged": sum(o.converged for o in outcomes),
        "n_flagged": sum(o.flagged for o in outcomes),
        "n_outside_and_flagged": len(misses) - len(unflagged),
        "n_outside_unflagged": len(unflagged),
        "n_flagged_but_within": sum(o.flagged and o.within for o in outcomes),
        "outside_unflagged": [
            {"seed": o.seed, "target_gap": o.target_gap, "marginal_gap": o.marginal_gap,
             "residual_gap": o.residual_gap, "worst_constraint": o.worst_constraint, "tags": o.tags,
             "exact_max_scaled_residual": o.exact_max_scaled_residual, "exact_max_lambda": o.exact_max_lambda}
            for o in sorted(unflagged, key=lambda o: -o.target_gap)
        ],
    }


def markdown(summary: dict[str, Any], backend: str, options: dict[str, Any]) -> str:
    """The summary as the markdown section of STRESS.md."""
    def row(name: str, key: str, digits: int = 4) -> str:
        d = summary[key]
        return f"| {name} | {d['median']:.{digits}f} | {d['p95']:.{digits}f} | {d['max']:.{digits}f} |"

    settings = ", ".join(f"{k}={v}" for k, v in options.items()) or "defaults"
    lines = [
        f"## {backend} against maxent on {summary['n_problems']} stress problems "
        f"(seeds {summary['seeds'][0]}-{summary['seeds'][1]})",
        "",
        f"Backend `{backend}` with {settings}; 2-core shared CPU (times are noisy).",
        "",
        "| quantity | median | p95 | max |",
        "|---|---|---|---|",
        row("abs dP(target)", "target_gap"),
        row("max marginal gap", "marginal_gap"),
        row("residual gap", "residual_gap"),
        row(f"{backend} seconds", "seconds", 2),
        row("maxent seconds", "exact_seconds", 2),
        "",
        f"- within tolerance (target {TARGET_TOLERANCE}, marginals {MARGINAL_TOLERANCE}, residuals "
        f"{RESIDUAL_TOLERANCE}): {summary['n_within']}/{summary['n_problems']}",
        f"- `converged=True`: {summary['n_converged']}; flagged (`converged=False` with a warning): "
        f"{summary['n_flagged']} ({summary['n_flagged_but_within']} of them within tolerance)",
        f"- outside tolerance and flagged: {summary['n_outside_and_flagged']}; "
        f"outside tolerance and NOT flagged: {summary['n_outside_unflagged']}",
    ]
    for miss in summary["outside_unflagged"][:20]:
        lines.append(f"  - seed {miss['seed']}: target {miss['target_gap']:.4f}, marginal {miss['marginal_gap']:.4f}, "
                     f"residual {miss['residual_gap']:.4f} ({miss['worst_constraint']}), tags {miss['tags']}, "
                     f"exact max |scaled residual| {miss['exact_max_scaled_residual']:.3f}, "
                     f"max |lambda| {miss['exact_max_lambda']:.1f}")
    return "\n".join(lines) + "\n"


def parse_seeds(text: str) -> range:
    """``A:B`` -> ``range(A, B)``."""
    start, _, stop = text.partition(":")
    return range(int(start), int(stop))


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=parse_seeds, default=parse_seeds("0:20"), help="A:B, seeds A..B-1")
    parser.add_argument("--backend", default="smm")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="backend config overrides")
    parser.add_argument("--jsonl", type=Path, default=None, help="one JSON line per problem (resumed if present)")
    parser.add_argument("--out", type=Path, default=None, help="write the summary and outcomes as JSON")
    parser.add_argument("--markdown", type=Path, default=None, help="write the summary section here")
    parser.add_argument("--summarise-only", action="store_true",
                        help="fit nothing: summarise the problems of --seeds already in --jsonl")
    parser.add_argument("--write-problems", type=Path, default=None, help="also save each problem JSON here")
    parser.add_argument("--conflict", type=float, default=None,
                        help="rate of conflicting conditionals for every problem (default: drawn per seed)")
    args = parser.parse_args(argv)
    options = {k: _parse_value(v) for k, v in (item.split("=", 1) for item in args.set)}

    outcomes: list[StressOutcome] = []
    if args.jsonl and args.jsonl.exists():
        outcomes = [StressOutcome(**json.loads(line)) for line in args.jsonl.read_text().splitlines() if line]
    done = {o.seed for o in outcomes}
    sink = args.jsonl.open("a") if args.jsonl else None
    for seed in args.seeds:
        if seed in done or args.summarise_only:
            continue
        problem = stress_problem(seed, args.conflict)
        if args.write_problems:
            args.write_problems.mkdir(parents=True, exist_ok=True)
            (args.write_problems / f"stress_{seed}.json").write_text(json.dumps(problem.to_json(), indent=1))
        outcome = compare(problem, args.backend, options)
        outcomes.append(outcome)
        if sink:
            sink.write(json.dumps(attrs.asdict(outcome)) + "\n")
            sink.flush()
        mark = "ok  " if outcome.within else ("flag" if outcome.flagged else "MISS")
        print(f"{mark} seed {seed} vars {outcome.n_variables} est {outcome.n_estimates} states "
              f"{outcome.n_joint_states:>9,}  target {outcome.target_gap:.4f}  marg {outcome.marginal_gap:.4f}  "
              f"resid {outcome.residual_gap:.4f}  {outcome.seconds:6.2f} s (maxent {outcome.exact_seconds:6.2f} s)  "
              f"conv {outcome.converged}", flush=True)
    if sink:
        sink.close()
    wanted = set(args.seeds)
    outcomes = [o for o in outcomes if o.seed in wanted]
    summary = summarise(outcomes)
    print(json.dumps({k: v for k, v in summary.items() if k != "outside_unflagged"}, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        document = {"backend": args.backend, "options": options, "summary": summary,
                    "outcomes": [attrs.asdict(o) for o in outcomes]}
        args.out.write_text(json.dumps(document, indent=1, allow_nan=False, default=str) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown(summary, args.backend, options))
    return 0 if summary["n_outside_unflagged"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
