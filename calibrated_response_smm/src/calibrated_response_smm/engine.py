"""The backend's two steps: a ``ConstraintSet`` to a laid-out model, and a fit to a ``FitResult``."""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs
import numpy as np
from calibrated_response_plugins.constraints import ConstraintSet, FitResult

from .adapters import AdaptedProblem, constraint_means, graph_from_constraints
from .certificate import Certificate, Doubt, doubt_warning
from .config import SMMConfig
from .training import SMMFit, SMMModel, certify_fit, fit_model


@attrs.frozen(eq=False)
class CompiledModel:
    """What ``compile_constraints`` returns: the adapted problem and its sampler layout."""

    problem: AdaptedProblem
    model: SMMModel
    compile_seconds: float


def compile_model(constraints: ConstraintSet, config: SMMConfig) -> CompiledModel:
    started = time.perf_counter()
    problem = graph_from_constraints(constraints)
    model = SMMModel.build(problem.graph, problem.targets, config.num_chains,
                           l2_regularization=config.l2_regularization, devices=config.devices,
                           block_moves=config.block_moves)
    return CompiledModel(problem, model, time.perf_counter() - started)


def can_warm_start(compiled: CompiledModel, previous: FitResult) -> bool:
    """Whether ``previous``'s chains and multipliers fit ``compiled`` (same layout and constraint count)."""
    fit = previous.state
    if not isinstance(fit, SMMFit) or fit.state is None or not compiled.problem.constraints.constraints:
        return False
    same_layout = tuple(fit.diagnostics.get("padded_shape", ())) == tuple(compiled.model.layout.shape)
    return same_layout and np.shape(previous.lambdas) == (len(compiled.problem.constraints.constraints),)


def fit_compiled(compiled: CompiledModel, config: SMMConfig, progress: Callable | None = None,
                 warm_start: FitResult | None = None, provisional: bool = False) -> FitResult:
    """Fit, then report multipliers, ``E[g]``, report-table means and marginals.

    ``warm_start``: an earlier result (see :func:`can_warm_start`) whose chains and
    multipliers the search starts from. ``provisional``: leave the certificate out
    until :func:`confirm_compiled`.
    """
    problem = compiled.problem
    constraints = problem.constraints
    if not constraints.constraints:
        # Nothing to match: the maximum-entropy answer is uniform over each variable's states.
        marginals = {d.name: np.full(d.n_states, 1.0 / d.n_states) for d in constraints.domains}
        return FitResult(
            lambdas=np.zeros(0), feature_means=np.zeros(0), report_means=np.zeros((0, 2)), marginals=marginals,
            converged=True, n_iterations=0, n_factors=0, history={}, diagnostics={"backend": "smm"},
        )
    initial = warm_start.state.state if warm_start is not None else None
    fit = fit_model(compiled.model, config, progress=progress, initial_state=initial, certified=not provisional)
    return fit_result(compiled, fit)


def confirm_compiled(compiled: CompiledModel, config: SMMConfig, fitted: FitResult) -> FitResult | None:
    """A provisional result with its certificate (None: nothing to add, e.g. no constraints)."""
    fit = fitted.state
    if not isinstance(fit, SMMFit) or fit.diagnostics.get("certified", True):
        return None
    return fit_result(compiled, certify_fit(compiled.model, config, fit))


def fit_result(compiled: CompiledModel, fit: SMMFit) -> FitResult:
    """The ``FitResult`` of a fit: multipliers, ``E[g]``, report-table means, marginals, warnings."""
    problem = compiled.problem
    constraints = problem.constraints
    feature_means, report_means = constraint_means(problem, fit.table_moments)
    lambdas = np.asarray(fit.params, dtype=np.float64)
    residuals = constraints.targets - feature_means - constraints.s2 * lambdas
    history = dict(fit.history)
    history["skipped_constraints"] = list(constraints.skipped)
    diagnostics = dict(fit.diagnostics)
    diagnostics.update(
        backend="smm",
        setup_s=compiled.compile_seconds,
        max_residual=float(np.max(np.abs(residuals))),
        joint_note="marginals averaged over persistent Gibbs chains; no dense joint is formed",
    )
    warnings = ()
    certificate = fit.diagnostics.get("certificate")
    if certificate is not None and not certificate["passed"]:
        failed = Certificate(**{**certificate, "doubts": tuple(Doubt(**d) for d in certificate["doubts"])})
        warnings = (doubt_warning(failed, [c.id for c in constraints.constraints]),)
    elif not fit.converged:
        warnings = (
            f"smm: moment errors not within tolerance after {fit.diagnostics['search_iterations']} iterations "
            f"(last max error {fit.history['max_error'][-1]:.3g}); raise num_iterations or num_chains",
        )
    return FitResult(
        lambdas=lambdas,
        feature_means=feature_means,
        report_means=report_means,
        marginals={d.name: p for d, p in zip(constraints.domains, fit.marginals)},
        converged=fit.converged,
        n_iterations=fit.n_iterations,
        n_factors=len(problem.graph.factors),
        history=history,
        diagnostics=diagnostics,
        warnings=warnings,
        state=fit,
        moment_stderr=_finite_or_zero(fit.diagnostics.get("final_stderr")),
    )


def _finite_or_zero(value) -> float:
    """``value`` as a float, 0 where it was not measured (None or nan)."""
    return float(value) if value is not None and np.isfinite(value) else 0.0
