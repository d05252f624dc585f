"""The generic, backend-agnostic ``DistributionBuilder``."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from calibrated_response_plugins.auto import AUTO, choose_backend, core_config
from calibrated_response_plugins.compiler import compile_problem, make_domains
from calibrated_response_plugins.conflicts import conflict_warnings
from calibrated_response_plugins.constraints import ConstraintSet, FitResult
from calibrated_response_plugins.correlations import fit_problem
from calibrated_response_plugins.distribution import HistogramDistribution
from calibrated_response_plugins.models import coerce_estimates, coerce_variables
from calibrated_response_plugins.registry import load_backend

DEFAULT_BACKEND = AUTO


class BackendOutputError(RuntimeError):
    """A backend returned marginals that are not probability vectors."""


def _config_as_dict(config: Any) -> dict[str, Any]:
    if attrs.has(type(config)):
        return attrs.asdict(config)
    if isinstance(config, Mapping):
        return dict(config)
    return {"repr": repr(config)}


def _checked_probabilities(backend: str, name: str, probabilities: Any, n_states: int) -> np.ndarray:
    array = np.asarray(probabilities, dtype=np.float64)
    if array.shape != (n_states,) or not np.all(np.isfinite(array)) or np.any(array < -1e-9):
        raise BackendOutputError(
            f"backend {backend!r} returned an invalid marginal for variable {name!r}: "
            f"expected {n_states} finite non-negative probabilities, got {array!r}"
        )
    array = np.clip(array, 0.0, None)
    total = array.sum()
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        raise BackendOutputError(f"backend {backend!r}: marginal of {name!r} sums to {total}, not 1")
    return array / total


def constraint_report(constraints: ConstraintSet, fitted: FitResult) -> list[dict[str, Any]]:
    """One row per fitted constraint, target and fitted value in the estimate's own terms."""
    rows = []
    for k, constraint in enumerate(constraints.constraints):
        numerator_mean, denominator_mean = fitted.report_means[k]
        value = _finite_or_none(constraint.reported(float(numerator_mean), float(denominator_mean)))
        residual = None if value is None else value - constraint.report_target
        rows.append({
            "id": constraint.id,
            "estimate_type": constraint.estimate_type,
            "relation": constraint.relation,
            "target": constraint.report_target,
            "fitted": value,
            "residual": residual,
            # Expectations in units of their variable's span, so one tolerance fits every row.
            "scaled_residual": None if residual is None else residual / constraint.report_scale,
            "lambda": _finite_or_none(float(fitted.lambdas[k])),
        })
    return rows


def _finite_or_none(value: float) -> float | None:
    """A report number, or None where it is undefined (a ratio whose condition has probability 0)."""
    return value if math.isfinite(value) else None


def report_warnings(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """A note for each report row whose fitted value is undefined."""
    return [
        f"{row['id']}: no fitted value: its condition has probability 0 under the fit"
        for row in rows if row["fitted"] is None
    ]


def _tqdm_progress(description: str) -> tuple[Callable[[int, int, dict], None], Callable[[], None]]:
    """A ``progress(done, total, metrics)`` callback drawing a tqdm bar on a terminal."""
    from tqdm.auto import tqdm

    bar = tqdm(desc=description, disable=None, leave=False, unit="it")

    def update(done: int, total: int, metrics: dict) -> None:
        bar.total = total
        bar.n = done
        if metrics:
            bar.set_postfix({k: f"{v:.3g}" for k, v in metrics.items() if isinstance(v, (int, float))})
        bar.refresh()

    return update, bar.close


def add_correlation_info(info: dict[str, Any], outcome) -> None:
    """Merge the correlation loop's skips, warnings, report rows and facts into ``info``."""
    if not outcome.info and not outcome.skipped:
        return
    info["skipped_constraints"].extend(outcome.skipped)
    info["warnings"].extend(outcome.warnings)
    info["constraint_report"].extend(outcome.report_rows)
    info["correlations"] = outcome.info
    info["converged"] = bool(info["converged"] and outcome.info.get("converged", True))


class DistributionBuilder:
    """Fit the maximum-entropy joint that honours the estimates; return histogram marginals.

    :param variables: binary and continuous variables (this package's classes,
        upstream pydantic objects, or dicts in the upstream JSON format).
    :param estimates: probability / expectation / conditional estimates (same forms).
    :param backend: name of an installed backend (``smm``, ``maxent``, ``pgmax``, ...), or
        ``auto`` (the default): ``maxent`` where the exact solve is expected faster, ``smm``
        otherwise (see :mod:`calibrated_response_plugins.auto`); ``self.backend`` is the
        one chosen and ``self.backend_reason`` says why.
    :param config: backend options as a mapping, or the backend's config object.
    """

    def __init__(
        self,
        variables: Sequence[Any],
        estimates: Sequence[Any],
        backend: str = DEFAULT_BACKEND,
        config: Mapping[str, Any] | Any | None = None,
    ):
        self.variables = coerce_variables(variables)
        self.estimates = coerce_estimates(estimates)
        make_domains(self.variables, 1)  # empty list and duplicate names fail here, early
        if backend == AUTO:
            # The choice needs the compiled scopes; the compiler reads only the core fields.
            choice = choose_backend(compile_problem(self.variables, self.estimates, core_config(config)), config)
            self.backend, self._plugins, self.config = choice.name, choice.plugins, choice.config
            self.backend_reason = f"auto: {choice.reason}"
        else:
            self.backend = backend
            self._plugins = load_backend(backend)
            self.config = self._plugins.hook.make_config(options=config)
            self.backend_reason = "requested by name"

    @property
    def variable_names(self) -> list[str]:
        return [v.name for v in self.variables]

    def compile(self) -> ConstraintSet:
        """The moment constraints every backend fits, with skips and warnings."""
        return compile_problem(self.variables, self.estimates, self.config)

    def build(self, target_variable: str | None = None, progress: bool = True) -> tuple[HistogramDistribution, dict]:
        """Fit and return ``(histogram of target_variable, info)``.

        ``target_variable`` defaults to the first variable. ``info`` holds the
        keys of docs/semantics.md, "What info holds" (marginals, constraint report, skips, ...).
        """
        target = self.variable_names[0] if target_variable is None else target_variable
        if target not in self.variable_names:
            raise ValueError(f"unknown target_variable {target!r}; variables are {self.variable_names}")
        start = time.perf_counter()
        constraints = self.compile()
        hook = self._plugins.hook
        callback, close = _tqdm_progress(f"{self.backend} fit") if progress else (None, lambda: None)
        try:
            outcome = fit_problem(hook, constraints, self.config, callback)
        finally:
            close()
        fitted = outcome.fitted
        raw_marginals = hook.marginals(fitted=fitted)
        runtime = time.perf_counter() - start
        marginals = {
            d.name: _checked_probabilities(self.backend, d.name, raw_marginals.get(d.name), d.n_states)
            for d in constraints.domains
        }
        report = constraint_report(constraints, fitted)
        info = {
            "target_variable": target,
            "n_variables": len(self.variables),
            "n_estimates": len(self.estimates),
            "n_factors": fitted.n_factors,
            "history": fitted.history,
            "skipped_constraints": list(constraints.skipped),
            "bin_edges_list": [d.bin_edges.tolist() for d in constraints.domains],
            "marginals": {name: p.tolist() for name, p in marginals.items()},
            "joint_note": fitted.diagnostics.get(
                "joint_note", f"marginals from the {self.backend} backend; no dense joint is returned"
            ),
            "backend": self.backend,
            "backend_reason": self.backend_reason,
            "config": _config_as_dict(self.config),
            "converged": bool(fitted.converged),
            "n_iterations": int(fitted.n_iterations),
            "runtime_sec": runtime,
            "warnings": list(constraints.warnings) + list(fitted.warnings) + report_warnings(report)
            + (conflict_warnings(report) if fitted.converged else []),
            "constraint_report": report,
            "diagnostics": fitted.diagnostics,
            "variable_names": self.variable_names,
        }
        add_correlation_info(info, outcome)
        return self._histogram(info, target), info

    @staticmethod
    def _histogram(info: Mapping[str, Any], name: str) -> HistogramDistribution:
        index = info["variable_names"].index(name)
        return HistogramDistribution(bin_edges=info["bin_edges_list"][index], bin_probabilities=info["marginals"][name])

    def get_all_marginals(self, info: Mapping[str, Any]) -> dict[str, HistogramDistribution]:
        """``{variable name: HistogramDistribution}`` for every variable of a ``build`` result."""
        return {name: self._histogram(info, name) for name in info["variable_names"]}
