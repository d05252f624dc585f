"""The one case runner: fit real cases with backends and record what every case benchmark reads.

:func:`run_case` loads one case file, fits it through ``DistributionBuilder`` with one
backend (and an optional config), times the build and returns a :class:`CaseResult`:
``fitted``; ``refused`` when the joint is above the backend's ``max_states`` size guard
(checked before fitting, nothing is run); or ``error`` with the first line of whatever
was raised (a benchmark counts failures instead of stopping at the first).

:func:`run_cases` runs several backends on a list of cases, usually the exact reference
``maxent`` among them. The reference's answers at its default settings depend on the case
only, so an optional JSON file keeps them between runs (``--exact-cache`` of
``bench_smm_accuracy.py``).

The target's one number is :func:`harness.target_value`, so ``|ΔP(target)|`` of two
results is ``abs(a.p_target - b.p_target)`` (:func:`target_gap`). Residuals are the
report's ``scaled_residual`` (expectations divided by their variable's span), in report
order: constraint ids repeat in real cases (estimate ids cut short upstream), so two
backends' residuals pair by position, not by id.

``bench_maxent_cases.py``, ``bench_pgmax_cases.py``, ``bench_smm_accuracy.py`` and
``measure.py`` (``report.py``) are summaries over these records.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import attrs

from calibrated_response_plugins import DistributionBuilder, load_problem

from harness import is_binary_target, target_value
from synthetic import block

REFERENCE = "maxent"
FITTED, REFUSED, ERROR = "fitted", "refused", "error"
SCALAR = (bool, int, float, str)


@attrs.frozen
class CaseResult:
    """One backend on one case (JSON-serialisable with :func:`attrs.asdict`).

    ``status`` is ``fitted``, ``refused`` (size guard) or ``error`` (``message`` says
    why). ``seconds`` is the wall-clock of the build (0 when refused, until the failure
    for an error). ``p_target`` is :func:`harness.target_value` of the target's marginal;
    ``marginals`` every variable's; ``residuals`` the scaled residuals in report order
    (NaN where undefined) with their ``residual_ids``. ``info`` holds ``n_variables``,
    ``n_states`` (the joint's size) and ``n_constraints`` once the case compiled, and
    after a fit the scalar entries of the fit's ``info`` and ``info["diagnostics"]``
    (``n_factors``, ``projected_gradient_norm``, ``factor_graph_is_tree``, ...).
    """

    case: str
    backend: str
    status: str
    seconds: float = 0.0
    p_target: float = float("nan")
    marginals: dict = attrs.field(factory=dict)
    residual_ids: tuple = attrs.field(default=(), converter=tuple)
    residuals: tuple = attrs.field(default=(), converter=tuple)
    converged: bool = False
    message: str = ""
    info: dict = attrs.field(factory=dict)

    @property
    def name(self) -> str:
        """The case's file name without ``.json``."""
        return Path(self.case).stem


def first_line(error: BaseException, limit: int = 160) -> str:
    """``Type: message`` on one line, shortened."""
    text = f"{type(error).__name__}: {error}".splitlines()[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def refusal(config, n_states: int) -> str | None:
    """The size-guard message of a backend with ``max_states`` when the joint is above it."""
    max_states = getattr(config, "max_states", None)
    if max_states is None or n_states <= max_states:
        return None
    return f"joint of {n_states:,} states above max_states={max_states:,}"


def scaled_residual(row: Mapping) -> float:
    """A report row's ``scaled_residual``; NaN where the fitted value is undefined."""
    value = row["scaled_residual"]
    return float("nan") if value is None else float(value)


def scalar_entries(info: Mapping) -> dict:
    """The plain-valued (JSON-serialisable) entries of a fit's ``info`` and its diagnostics."""
    merged = {**info, **info.get("diagnostics", {})}
    return {key: value for key, value in merged.items() if isinstance(value, SCALAR)}


def fitted_result(case: str, backend: str, problem, seconds: float, info: dict, sizes: dict) -> CaseResult:
    """The record of a finished fit."""
    target = info["target_variable"]
    index = info["variable_names"].index(target)
    report = info["constraint_report"]
    return CaseResult(
        case, backend, FITTED, seconds,
        target_value(info["marginals"][target], info["bin_edges_list"][index], is_binary_target(problem)),
        {name: [float(p) for p in marginal] for name, marginal in info["marginals"].items()},
        [row["id"] for row in report],
        [scaled_residual(row) for row in report],
        bool(info["converged"]),
        info={**sizes, **scalar_entries(info)},
    )


def run_case(path: Path, backend: str, config: dict | None = None) -> CaseResult:
    """Fit one case file with one backend (``config``: its options, default settings when None)."""
    path = Path(path)
    sizes: dict = {}
    started = time.perf_counter()
    try:
        problem = load_problem(path)
        builder = DistributionBuilder(problem.variables, problem.estimates, backend=backend, config=config)
        constraints = builder.compile()
        sizes = {"n_variables": len(problem.variables), "n_states": math.prod(int(n) for n in constraints.n_states),
                 "n_constraints": len(constraints.constraints)}
        reason = refusal(builder.config, sizes["n_states"])
        if reason:
            return CaseResult(path.name, backend, REFUSED, message=reason, info=sizes)
        started = time.perf_counter()
        _, info = block(builder.build(target_variable=problem.target_variable or problem.variables[0].name,
                                      progress=False))
        seconds = time.perf_counter() - started
    except Exception as error:  # a benchmark counts failures instead of stopping at the first
        return CaseResult(path.name, backend, ERROR, time.perf_counter() - started, message=first_line(error),
                          info=sizes)
    return fitted_result(path.name, backend, problem, seconds, info, sizes)


def target_gap(result: CaseResult, reference: CaseResult) -> float:
    """``|ΔP(target)|`` of two fits of one case (:func:`harness.target_difference` of their marginals)."""
    return abs(result.p_target - reference.p_target)


def read_cache(path: Path | None) -> dict[str, CaseResult]:
    """The cached reference results by case file name; entries of another shape (an older cache) are dropped,
    so those cases are fitted again."""
    if path is None or not Path(path).exists():
        return {}
    fields = {field.name for field in attrs.fields(CaseResult)}
    entries = json.loads(Path(path).read_text(encoding="utf-8"))
    return {case: CaseResult(**entry) for case, entry in entries.items() if set(entry) == fields}


def write_cache(path: Path, cached: Mapping[str, CaseResult]) -> None:
    """Write the cached reference results (NaN as JSON's ``NaN``, which :func:`read_cache` reads back)."""
    Path(path).write_text(json.dumps({case: attrs.asdict(r) for case, r in cached.items()}), encoding="utf-8")


def reference_result(path: Path, cached: dict[str, CaseResult], cache: Path) -> CaseResult:
    """The reference's default-settings result of one case from ``cached``, fitting (and caching) it when
    missing; an error is returned but not cached, so the next run tries again."""
    result = cached.get(path.name)
    if result is None:
        result = run_case(path, REFERENCE)
        if result.status != ERROR:
            cached[path.name] = result
            write_cache(cache, cached)
    return result


def fit_or_cached(path: Path, backend: str, config: dict | None, cached: dict[str, CaseResult],
                  cache: Path | None) -> CaseResult:
    """:func:`run_case`, the reference at its default settings through the cache when there is one."""
    if backend == REFERENCE and config is None and cache is not None:
        return reference_result(path, cached, cache)
    return run_case(path, backend, config)


def run_cases(
    paths: Iterable[Path],
    backends: Sequence[str],
    configs: Mapping[str, dict] | None = None,
    cache: Path | None = None,
    on_case: Callable[[dict[str, CaseResult]], None] | None = None,
    where_reference_fits: bool = False,
) -> list[CaseResult]:
    """Every backend on every case, case by case in the order given, one :class:`CaseResult` each.

    ``configs`` maps a backend to its options (default settings otherwise). With
    ``cache``, the reference's default-settings results are read from and added to that
    JSON file. ``on_case`` receives each case's ``{backend: result}`` as soon as it is
    done. ``where_reference_fits`` fits the reference first and the other backends only
    on the cases it fitted (nothing to compare with elsewhere).
    """
    configs = configs or {}
    cached = read_cache(cache)
    if where_reference_fits:
        backends = [REFERENCE, *(b for b in backends if b != REFERENCE)]
    results = []
    for path in paths:
        row: dict[str, CaseResult] = {}
        for backend in backends:
            if where_reference_fits and backend != REFERENCE and row[REFERENCE].status != FITTED:
                break
            row[backend] = fit_or_cached(Path(path), backend, configs.get(backend) or None, cached, cache)
        results.extend(row.values())
        if on_case:
            on_case(row)
    return results
