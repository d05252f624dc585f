"""Time to solution: synthetic problems fitted to convergence through the public builder.

    python benchmarks/scale.py                                   # 10^3, 10^4, 10^5 variables
    python benchmarks/scale.py --sizes 1000 --graphs tree --backends pgmax,smm
    python benchmarks/scale.py --render                          # REPORT.md section from the JSON only

Every fit is ``DistributionBuilder(variables, estimates, backend=...).build()`` with
the backend's default settings on a ``synthetic.py`` problem (seed 0, a quarter of
the variables continuous), on a tree (``extra_edge_fraction=0``) or a loopy graph
(``extra_edge_fraction=0.5``). Each runs in a fresh Python process, so its time
includes JIT compilation and its peak RSS (``ru_maxrss``) is its own; problem
generation is not timed. A fit that runs past ``--timeout`` is recorded as such.

Accuracy is the largest difference of any marginal probability (every state of
every variable) from a reference fit of the same problem:

- on a tree, ``pgmax``: belief propagation is exact on a tree, so its fit is the
  exact maximum-entropy answer (to its optimiser's tolerance);
- on a loopy graph, ``smm-reference``: smm with 8 times the chains and a tenth of
  the tolerances (``REFERENCE_SCALING``); pgmax's difference from it is recorded
  beside smm's (its Bethe marginals are not exact there).

Records accumulate in ``--out`` (one per graph, size and backend; a rerun replaces
its own), the marginals of each fit go to ``--cache`` (not committed), and the
Markdown section ``scale`` of ``--report`` and its log-log figure of time against
size, with the fitted exponent per backend and graph, are rewritten from the
whole JSON file.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

GRAPHS = {"tree": 0.0, "loopy": 0.5}
DEFAULT_SIZES = (1_000, 10_000, 100_000)
DEFAULT_BACKENDS = ("smm", "pgmax")
SEED = 0
TREE_REFERENCE = "pgmax"
LOOPY_REFERENCE = "smm-reference"
# The loopy reference: smm with 8x the chains and a tenth of its tolerances, each factor
# applied to the backend's own default (fields its config lacks are left out).
REFERENCE_SCALING = {"num_chains": 8, "tolerance": 0.1, "final_tolerance": 0.1}
DEFAULT_TIMEOUT_S = 7_200
DEFAULT_OUT = HERE / "results" / "scale.json"
DEFAULT_CACHE = HERE / "results" / "cache"
DEFAULT_REPORT = HERE / "REPORT.md"
DEFAULT_FIGURE = HERE / "figures" / "time_to_solution.png"
SECTION = "scale"


# --------------------------------------------------------------------------- what to fit


@attrs.frozen
class FitSpec:
    """One fit: a backend (``label`` names it in the results) with options on one synthetic problem."""

    graph: str
    n_variables: int
    label: str
    backend: str
    options: dict = attrs.field(factory=dict, eq=False)
    seed: int = SEED

    @property
    def key(self) -> str:
        """A file-name-safe key, unique per problem, label and options."""
        digest = hashlib.sha1(json.dumps(self.options, sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.graph}-{self.n_variables}-s{self.seed}-{self.label}-{digest}"

    def to_json(self) -> dict:
        return attrs.asdict(self)


def reference_options(backend: str = "smm", scaling: dict | None = None) -> dict:
    """Options of the loopy reference: ``REFERENCE_SCALING`` applied to the backend's defaults."""
    from synthetic import backend_config

    config = backend_config(backend)
    options = {}
    for name, factor in (REFERENCE_SCALING if scaling is None else scaling).items():
        default = getattr(config, name, None)
        if default is not None:
            value = default * factor
            options[name] = int(round(value)) if isinstance(default, int) else float(value)
    return options


def reference_spec(graph: str, n_variables: int, seed: int = SEED, backend: str | None = None) -> FitSpec:
    """The reference fit of a problem: pgmax on a tree, smm with reference options on a loopy graph.

    ``backend`` replaces both by that backend with its defaults (``maxent``, exact on
    any graph it can enumerate, for small problems).
    """
    if backend is not None:
        return FitSpec(graph, n_variables, backend, backend, {}, seed)
    if GRAPHS[graph] == 0.0:
        return FitSpec(graph, n_variables, TREE_REFERENCE, "pgmax", {}, seed)
    return FitSpec(graph, n_variables, LOOPY_REFERENCE, "smm", reference_options(), seed)


def plan_fits(graph: str, n_variables: int, backends: Sequence[str], with_reference: bool,
              seed: int = SEED, reference_backend: str | None = None) -> tuple[list[FitSpec], FitSpec | None]:
    """The fits of one problem (requested backends, default settings) and its reference (or None)."""
    specs = [FitSpec(graph, n_variables, backend, backend, {}, seed) for backend in backends]
    reference = reference_spec(graph, n_variables, seed, reference_backend) if with_reference else None
    if reference is not None and all(spec.key != reference.key for spec in specs):
        specs.append(reference)
    return specs, reference


# --------------------------------------------------------------------------- one fit (child process)


def flatten_marginals(names: Sequence[str], marginals: dict) -> tuple[np.ndarray, np.ndarray]:
    """Every variable's marginal in ``names`` order, concatenated, and the offsets between them."""
    arrays = [np.asarray(marginals[name], dtype=np.float64) for name in names]
    offsets = np.cumsum([0] + [a.size for a in arrays])
    return (np.concatenate(arrays) if arrays else np.zeros(0)), offsets


def scalar_items(mapping: dict) -> dict:
    """The JSON-able scalar entries of a mapping (numbers, strings, booleans, None)."""
    kept = {}
    for key, value in mapping.items():
        if isinstance(value, (bool, int, float, str)) or value is None:
            kept[key] = value if not (isinstance(value, float) and not math.isfinite(value)) else None
        elif isinstance(value, np.generic):
            kept[key] = value.item()
    return kept


def largest_scaled_residual(report: Iterable[dict], constraints) -> float:
    """The largest ``|fitted - target|`` of a constraint report, expectations divided by their domain span."""
    scales = {c.id: abs(float(c.report_scale)) or 1.0 for c in constraints.constraints}
    gaps = [abs(float(row["residual"])) / scales.get(row["id"], 1.0) for row in report]
    finite = [gap for gap in gaps if math.isfinite(gap)]
    return max(finite) if finite else float("nan")


def peak_rss_gb() -> float:
    """This process's peak resident set size in GiB (``ru_maxrss`` is in KiB on Linux)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def fit_one(spec: FitSpec, marginals_path: Path) -> dict:
    """Fit ``spec`` here, write its marginals to ``marginals_path`` (npz), return its record."""
    from synthetic import backend_device, synthetic_problem

    from calibrated_response_plugins import DistributionBuilder

    problem = synthetic_problem(spec.n_variables, seed=spec.seed, extra_edge_fraction=GRAPHS[spec.graph])
    started = time.perf_counter()
    builder = DistributionBuilder(problem.variables, problem.estimates, backend=spec.backend,
                                  config=spec.options or None)
    _, info = builder.build(problem.target_variable, progress=False)
    seconds = time.perf_counter() - started
    rss = peak_rss_gb()  # before the extra compile below
    values, offsets = flatten_marginals(info["variable_names"], info["marginals"])
    np.savez(marginals_path, values=values, offsets=offsets)
    diagnostics = scalar_items(info.get("diagnostics", {}))
    return {
        "status": "ok",
        "seconds": seconds,
        "peak_rss_gb": rss,
        "converged": bool(info["converged"]),
        "iterations": int(info["n_iterations"]),
        "chains": diagnostics.get("num_chains"),
        "sweeps": diagnostics.get("sweeps"),
        "final_sweeps": diagnostics.get("final_sweeps"),
        "n_constraints": len(info["constraint_report"]),
        "max_residual": largest_scaled_residual(info["constraint_report"], builder.compile()),
        "device": backend_device(spec.backend),
        "diagnostics": diagnostics,
    }


def child_main(spec_json: str, marginals_path: str) -> int:
    """Entry point of the fresh process: print the record as the last line of stdout."""
    spec = FitSpec(**json.loads(spec_json))
    print(json.dumps(fit_one(spec, Path(marginals_path))))
    return 0


# --------------------------------------------------------------------------- running fits (parent)


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def run_fit(spec: FitSpec, cache: Path, timeout_s: float) -> dict:
    """``spec`` fitted in a fresh process; its record with the spec, the wall time of the process and a status.

    The status is ``ok``, ``timeout`` (killed after ``timeout_s``) or ``error`` (the
    last line of its stderr as the message).
    """
    from measure import git_revision

    cache.mkdir(parents=True, exist_ok=True)
    marginals = cache / f"{spec.key}.npz"
    command = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec.to_json()), str(marginals)]
    started = time.perf_counter()
    base = {**spec.to_json(), "key": spec.key, "commit": git_revision(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    # time to solution includes compilation, as on a first run: each fit gets an empty compilation cache
    with tempfile.TemporaryDirectory() as compiled:
        env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
        env["CALIBRATED_RESPONSE_CACHE"] = compiled
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False, env=env)
        except subprocess.TimeoutExpired:
            done = None
    if done is None:
        return {**base, "status": "timeout", "message": f"no answer within {timeout_s:g} s",
                "process_s": time.perf_counter() - started}
    process_s = time.perf_counter() - started
    if done.returncode != 0:
        return {**base, "status": "error", "message": last_line(done.stderr)[:300], "process_s": process_s}
    record = json.loads(last_line(done.stdout))
    return {**base, **record, "process_s": process_s}


def load_marginals(record: dict, cache: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """``(values, offsets)`` of a fitted record's marginals from ``cache``, or None when absent."""
    path = cache / f"{record.get('key')}.npz"
    if record.get("status") != "ok" or not path.exists():
        return None
    with np.load(path) as data:
        return data["values"], data["offsets"]


def marginal_errors(mine: tuple[np.ndarray, np.ndarray], reference: tuple[np.ndarray, np.ndarray]) -> dict:
    """Largest and median (over variables) of the largest ``|p - p_reference|`` of each variable's marginal."""
    values, offsets = mine
    ref_values, ref_offsets = reference
    if not np.array_equal(offsets, ref_offsets):
        raise ValueError("the two fits have different variables or numbers of states")
    gaps = np.abs(values - ref_values)
    per_variable = np.maximum.reduceat(gaps, offsets[:-1]) if gaps.size else np.zeros(0)
    return {"max_marginal_error": float(per_variable.max(initial=0.0)),
            "median_marginal_error": float(np.median(per_variable)) if per_variable.size else float("nan")}


def with_accuracy(record: dict, reference: dict | None, cache: Path) -> dict:
    """``record`` with its marginal errors against ``reference`` (a record) where both fitted."""
    if reference is None:
        return record
    out = {**record, "reference": reference["label"]}
    if record["key"] == reference["key"]:
        return {**out, "max_marginal_error": 0.0, "median_marginal_error": 0.0}
    mine, theirs = load_marginals(record, cache), load_marginals(reference, cache)
    if mine is None or theirs is None:
        return out
    return {**out, **marginal_errors(mine, theirs)}


def cached_record(records: Sequence[dict], spec: FitSpec, cache: Path) -> dict | None:
    """The stored record of ``spec`` whose marginals are still in the cache, if any."""
    for record in records:
        if record.get("key") == spec.key and load_marginals(record, cache) is not None:
            return record
    return None


def run_problem(graph: str, n_variables: int, backends: Sequence[str], cache: Path, timeout_s: float,
                with_reference: bool = True, reuse_reference: Sequence[dict] = (), reference_backend: str | None = None,
                log=print) -> list[dict]:
    """Every requested fit of one problem and its reference, each with its errors against the reference."""
    specs, reference = plan_fits(graph, n_variables, backends, with_reference, SEED, reference_backend)
    fitted = {}
    for spec in specs:
        only_reference = reference is not None and spec.key == reference.key and spec.label not in backends
        reused = cached_record(reuse_reference, spec, cache) if only_reference else None
        fitted[spec.key] = reused or run_fit(spec, cache, timeout_s)
        log(summary_line(fitted[spec.key]) + (" (reused)" if reused else ""))
    ref_record = fitted.get(reference.key) if reference is not None else None
    return [with_accuracy(record, ref_record, cache) for record in fitted.values()]


def summary_line(record: dict) -> str:
    """One progress line for a finished fit."""
    head = f"{record['graph']:>5} n={record['n_variables']:>7,} {record['label']:<14}"
    if record["status"] != "ok":
        return f"{head} {record['status']}: {record.get('message', '')}"
    return (f"{head} {record['seconds']:9.1f} s  iterations {record['iterations']}  chains {record['chains']}  "
            f"sweeps {record['sweeps']}+{record['final_sweeps']}  RSS {record['peak_rss_gb']:.2f} GB  "
            f"converged {record['converged']}  max residual {record['max_residual']:.3g}")


# --------------------------------------------------------------------------- results file


def load_results(path: Path) -> dict:
    """The results file, or an empty one."""
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    return {"records": []}


def merge_records(old: Sequence[dict], new: Sequence[dict]) -> list[dict]:
    """``old`` with every record of the same graph, size and label as one in ``new`` replaced by it."""
    key = lambda r: (r["graph"], r["n_variables"], r["label"])  # noqa: E731
    replaced = {key(r) for r in new}
    merged = [r for r in old if key(r) not in replaced] + list(new)
    return sorted(merged, key=lambda r: (r["graph"], r["n_variables"], r["label"]))


def save_results(path: Path, records: Sequence[dict], machine: dict) -> dict:
    data = {"machine": machine, "records": list(records)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return data


def machine_summary() -> dict:
    """CPU model and cores, the load average and the commit (each fit records its own device)."""
    from measure import cpu_description, git_revision, load_average

    try:
        model, cores = cpu_description(Path("/proc/cpuinfo").read_text(encoding="utf-8"))
    except OSError:
        model, cores = "unknown", os.cpu_count()
    return {"cpu": model, "cores": cores, "load average": load_average(), "commit": git_revision()}


# --------------------------------------------------------------------------- report


def fitted_exponent(sizes: Sequence[float], seconds: Sequence[float]) -> tuple[float, float]:
    """Slope and intercept of ``log10 t = a log10 n + b`` (NaN with fewer than two distinct sizes)."""
    if len(set(sizes)) < 2:
        return float("nan"), float("nan")
    slope, intercept = np.polyfit(np.log10(sizes), np.log10(seconds), 1)
    return float(slope), float(intercept)


def series(records: Sequence[dict]) -> dict[tuple[str, str], list[dict]]:
    """``{(label, graph): fitted records by size}`` of the records that fitted."""
    out: dict[tuple[str, str], list[dict]] = {}
    for record in records:
        if record["status"] == "ok":
            out.setdefault((record["label"], record["graph"]), []).append(record)
    return {key: sorted(value, key=lambda r: r["n_variables"]) for key, value in sorted(out.items())}


def plot_time_to_solution(records: Sequence[dict], path: Path) -> None:
    """Seconds to solution against variables, log-log, one line per backend and graph with its power law."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for (label, graph), mine in series(records).items():
        n = np.array([r["n_variables"] for r in mine], dtype=float)
        t = np.array([r["seconds"] for r in mine])
        slope, intercept = fitted_exponent(n, t)
        name = f"{label}, {graph}" + ("" if math.isnan(slope) else f" (t ∝ n^{slope:.2f})")
        (line,) = ax.plot(n, t, "o" if graph == "tree" else "s", label=name)
        if not math.isnan(slope):
            ax.plot(n, 10 ** (intercept + slope * np.log10(n)), "-" if graph == "tree" else "--",
                    color=line.get_color(), alpha=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("variables in the synthetic problem")
    ax.set_ylabel("seconds to solution (DistributionBuilder.build)")
    ax.set_title("Time to solution on sparse synthetic problems")
    ax.grid(True, which="both", alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def cell(value, digits: int = 3) -> str:
    from render import fmt

    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return fmt(float(value), digits) if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else str(value)


def results_table(records: Sequence[dict]) -> str:
    """One row per fit: time, iterations, sweeps, chains, RSS, convergence, residual and accuracy."""
    from render import markdown_table

    rows = []
    for r in sorted(records, key=lambda r: (r["graph"], r["n_variables"], r["label"])):
        measured = " ".join(str(r[k]) for k in ("date", "commit") if r.get(k)) or "-"
        if r["status"] != "ok":
            rows.append([r["graph"], f"{r['n_variables']:,}", f"`{r['label']}`", r["status"], *["-"] * 8,
                         r.get("message", "").replace("|", "/"), measured])
            continue
        sweeps = "-" if r.get("sweeps") is None else f"{r['sweeps']:,} + {r.get('final_sweeps') or 0:,}"
        rows.append([r["graph"], f"{r['n_variables']:,}", f"`{r['label']}`", cell(r["seconds"], 4),
                     cell(r["iterations"]), sweeps, cell(r.get("chains")), cell(r["peak_rss_gb"]),
                     cell(r["converged"]), cell(r["max_residual"]), cell(r.get("max_marginal_error")),
                     cell(r.get("median_marginal_error")), f"`{r['reference']}`" if r.get("reference") else "-",
                     measured])
    # rows of several runs share the table: each says when, and from which commit, it was measured
    header = ["graph", "variables", "backend", "seconds", "iterations", "sweeps (training + final)", "chains",
              "peak RSS GB", "converged", "max residual", "max marginal error", "median marginal error",
              "reference", "measured"]
    return markdown_table(header, rows)


def exponent_table(records: Sequence[dict]) -> str:
    from render import markdown_table

    rows = []
    for (label, graph), mine in series(records).items():
        sizes = [r["n_variables"] for r in mine]
        slope, _ = fitted_exponent(sizes, [r["seconds"] for r in mine])
        rows.append([f"`{label}`", graph, cell(slope, 2), ", ".join(f"{n:,}" for n in sizes)])
    return markdown_table(["backend", "graph", "exponent", "sizes"], rows)


def render_section(data: dict, figure: str = "figures/time_to_solution.png") -> str:
    """The ``scale`` section of REPORT.md from the results file's contents."""
    records = data.get("records", [])
    machine = data.get("machine", {})
    parts = [
        "## Time to solution at scale",
        "Written by `python benchmarks/scale.py`. Each row is one fit of a synthetic problem "
        "(`benchmarks/synthetic.py`, seed 0: a quarter of the variables continuous on [0, 100], the rest "
        "binary; one P(A) or E[X] per variable and one P(A | B) per edge) through "
        "`DistributionBuilder(...).build()` with the backend's default settings, in a fresh process: "
        "seconds include the constraint compiler and JIT compilation, peak RSS is that process's "
        "`ru_maxrss`. A tree has `extra_edge_fraction=0`, a loopy graph `0.5`. Max residual is the "
        "largest \\|fitted − target\\| of any constraint (expectations divided by their domain span). A "
        "marginal error is the largest \\|p − p_reference\\| over the states of one variable; the table "
        "gives its maximum and median over variables. On a tree the reference is `pgmax`, exact there; on "
        f"a loopy graph it is `{LOOPY_REFERENCE}`, smm with "
        + ", ".join(f"{name} × {factor:g}" for name, factor in REFERENCE_SCALING.items())
        + ", and pgmax's (Bethe) error against it is given beside smm's.",
    ]
    devices = sorted({f"`{r['label']}` on {r['device']}" for r in records if r.get("device")})
    if machine:
        parts.append("Machine: " + "; ".join(f"{key}: {value}" for key, value in machine.items())
                     + (f"; devices: {', '.join(devices)}" if devices else "") + ".")
    if records:
        parts += [results_table(records),
                  "Fitted exponent `a` of `t ∝ n^a` (least squares on log10 t against log10 n over the sizes "
                  "fitted):",
                  exponent_table(records), f"![time to solution]({figure})"]
    else:
        parts.append("No fit recorded yet.")
    return "\n\n".join(parts)


def render(data: dict, report: Path, figure: Path) -> None:
    """Rewrite the ``scale`` section of ``report`` and its figure from the results."""
    from sections import write_section

    plot_time_to_solution(data.get("records", []), figure)
    try:
        relative = figure.resolve().relative_to(report.resolve().parent).as_posix()
    except ValueError:
        relative = str(figure)
    write_section(report, SECTION, render_section(data, relative))


# --------------------------------------------------------------------------- command


def int_list(text: str) -> list[int]:
    return [int(float(item)) for item in text.split(",") if item.strip()]


def name_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int_list, default=list(DEFAULT_SIZES), help="comma-separated variables")
    parser.add_argument("--graphs", type=name_list, default=list(GRAPHS), help=f"of {', '.join(GRAPHS)}")
    parser.add_argument("--backends", type=name_list, default=list(DEFAULT_BACKENDS), help="comma-separated")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON (records accumulate)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="folder for the fits' marginals")
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT, help="Markdown report to update")
    parser.add_argument("--figure", type=Path, default=DEFAULT_FIGURE, help="PNG plot to write")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per fit")
    parser.add_argument("--no-reference", action="store_true", help="no reference fits, no accuracy")
    parser.add_argument("--reference-backend", default=None,
                        help="one reference backend (default settings) for every graph instead of "
                             f"{TREE_REFERENCE} / {LOOPY_REFERENCE}, e.g. maxent on problems it can enumerate")
    parser.add_argument("--reuse-reference", action="store_true",
                        help="take a reference fit from the results and cache when it is there")
    parser.add_argument("--render", action="store_true", help="only rewrite the report section from --out")
    parser.add_argument("--no-report", action="store_true", help="leave the report and figure alone")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.graphs) - set(GRAPHS))
    if unknown:
        parser.error(f"unknown graph(s) {unknown}; known: {list(GRAPHS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--child"]:
        return child_main(argv[1], argv[2])
    args = parse_args(argv)
    data = load_results(args.out)
    if not args.render:
        machine, new = machine_summary(), []
        for graph in args.graphs:
            for n in args.sizes:
                new += run_problem(graph, n, args.backends, args.cache, args.timeout, not args.no_reference,
                                   data["records"] if args.reuse_reference else (), args.reference_backend)
                data = save_results(args.out, merge_records(data["records"], new), machine)
        print(f"wrote {args.out}")
    if not args.no_report:
        render(data, args.report, args.figure)
        print(f"wrote section {SECTION!r} of {args.report} and {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
