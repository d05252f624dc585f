"""Compile a ConstraintSet into a PGMax model and fit its dual."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from calibrated_response_plugins.dual import dual_gradient, free_gradient
from calibrated_response_plugins.constraints import ConstraintSet, FitResult
from calibrated_response_pgmax.config import PgmaxConfig
from calibrated_response_pgmax.layout import FactorLayout, build_layout, is_tree

BETHE_NOTE = "Bethe approximation"
JOINT_NOTE = (
    "no joint is returned: pgmax marginals are BP (Bethe) beliefs, exact when the factor graph is a tree"
)


@attrs.frozen(eq=False)
class PgmaxModel:
    """A compiled problem: the constraint set, its factor layout and the PGMax graph."""

    problem: ConstraintSet
    layout: FactorLayout
    graph: Any


def compile_model(problem: ConstraintSet) -> PgmaxModel:
    """Lay out factors and build the PGMax graph once."""
    from calibrated_response_pgmax.graph import build_graph

    layout = build_layout(problem)
    return PgmaxModel(problem=problem, layout=layout, graph=build_graph(layout, problem.n_states))


def split_variable_beliefs(flat_log_beliefs: np.ndarray, problem: ConstraintSet) -> dict[str, np.ndarray]:
    """Normalised per-variable marginals from PGMax's flat variable log-beliefs (VarDict order)."""
    marginals = {}
    start = 0
    for domain in problem.domains:
        log_belief = np.asarray(flat_log_beliefs[start : start + domain.n_states], dtype=np.float64)
        start += domain.n_states
        weights = np.exp(log_belief - log_belief.max())
        marginals[domain.name] = weights / weights.sum()
    return marginals


def projected_residuals(grad: np.ndarray, lambdas: np.ndarray, problem: ConstraintSet) -> np.ndarray:
    """Dual gradient with the components held at a sign bound (lambda at 0 pushing outward) zeroed."""
    lower, upper = problem.sign_bounds()
    return free_gradient(np.asarray(lambdas, dtype=np.float64), grad, lower, upper)


def _empty_result(model: PgmaxModel) -> FitResult:
    marginals = {d.name: np.full(d.n_states, 1.0 / d.n_states) for d in model.problem.domains}
    return FitResult(
        lambdas=np.zeros(0),
        feature_means=np.zeros(0),
        report_means=np.zeros((0, 2)),
        marginals=marginals,
        converged=True,
        n_iterations=0,
        n_factors=model.layout.n_factors,
        history={"iteration": [], "dual": [], "max_residual": [], "bp_delta": [], "bp_sweeps": []},
        diagnostics={"marginals": BETHE_NOTE, "joint_note": JOINT_NOTE, "factor_graph_is_tree": True},
    )


class BetheDual:
    """The Bethe dual as a function of lambda for scipy, keeping BP messages warm between calls.

    Each call runs ``evaluate`` (``bp_iterations`` sweeps) until the largest
    message change is at most ``bp_tolerance`` or ``max_bp_iterations`` sweeps ran.
    """

    def __init__(self, evaluate, initial_msgs, config: PgmaxConfig):
        self.evaluate = evaluate
        self.msgs = initial_msgs
        self.config = config
        self.last = {"dual": float("nan"), "grad": None, "bp_delta": float("inf"), "bp_sweeps": 0}

    def __call__(self, lambdas: np.ndarray) -> tuple[float, np.ndarray]:
        import jax.numpy as jnp

        sweeps, delta = 0, float("inf")
        while sweeps < self.config.max_bp_iterations and delta > self.config.bp_tolerance:
            dual, grad, self.msgs, delta = self.evaluate(jnp.asarray(lambdas), self.msgs)
            sweeps += self.config.bp_iterations
            delta = float(delta)
        grad = np.asarray(grad, dtype=np.float64)
        self.last = {"dual": float(dual), "grad": grad, "bp_delta": delta, "bp_sweeps": sweeps}
        return float(dual), grad


def can_warm_start(model: PgmaxModel, previous: FitResult) -> bool:
    """Whether ``previous``'s multipliers and BP messages fit ``model`` (same constraint count and messages)."""
    state = previous.state
    if not isinstance(state, dict) or "ftov_msgs" not in state or not model.problem.constraints:
        return False
    n_msgs = np.shape(np.asarray(model.graph.initial_arrays.ftov_msgs))
    return np.shape(previous.lambdas) == (len(model.problem.constraints),) and np.shape(state["ftov_msgs"]) == n_msgs


def fit_model(
    model: PgmaxModel,
    config: PgmaxConfig,
    progress: Callable[[int, int, dict], None] | None = None,
    warm_start: FitResult | None = None,
) -> FitResult:
    """Minimise the Bethe dual with L-BFGS-B on BP moments; return the core FitResult.

    ``warm_start``: an earlier result on the same layout (see :func:`can_warm_start`);
    L-BFGS-B starts at its multipliers and BP at its messages.
    """
    import jax
    import jax.numpy as jnp
    from scipy.optimize import minimize

    from calibrated_response_pgmax import engine

    problem, layout, graph = model.problem, model.layout, model.graph
    if not problem.constraints:
        return _empty_result(model)

    started = time.perf_counter()
    history: dict[str, list] = {"iteration": [], "dual": [], "max_residual": [], "bp_delta": [], "bp_sweeps": []}
    with jax.enable_x64(True):
        statics = engine.make_statics(layout, graph, problem)
        start_msgs = graph.initial_arrays.ftov_msgs if warm_start is None else warm_start.state["ftov_msgs"]
        dual = BetheDual(
            engine.build_evaluate(graph, statics, layout, config),
            jnp.asarray(np.asarray(start_msgs), dtype=jnp.float64),
            config,
        )

        def record(xk: np.ndarray) -> None:
            lambdas = np.asarray(xk)
            residual = float(np.max(np.abs(projected_residuals(dual.last["grad"], lambdas, problem))))
            history["iteration"].append(len(history["iteration"]) + 1)
            history["dual"].append(dual.last["dual"])
            history["max_residual"].append(residual)
            history["bp_delta"].append(dual.last["bp_delta"])
            history["bp_sweeps"].append(dual.last["bp_sweeps"])
            if progress is not None:
                progress(len(history["iteration"]), config.max_iterations,
                         {"max_residual": residual, "bp_delta": dual.last["bp_delta"]})

        lambdas = np.zeros(len(problem.constraints)) if warm_start is None else np.array(warm_start.lambdas)
        n_iterations, n_evaluations = 0, 0
        for _ in range(1 + config.restarts):
            solution = minimize(
                dual, lambdas, jac=True, method="L-BFGS-B", bounds=problem.lambda_bounds(), callback=record,
                options={"maxiter": config.max_iterations, "gtol": config.tolerance / 10, "ftol": 0.0},
            )
            lambdas = np.asarray(solution.x, dtype=np.float64)
            n_iterations += int(solution.nit)
            n_evaluations += int(solution.nfev)
            if history["max_residual"] and history["max_residual"][-1] < config.tolerance:
                break
        final = engine.build_final(graph, statics, layout, config)
        beliefs, var_log_beliefs, _, final_delta = final(jnp.asarray(lambdas), dual.msgs)
        beliefs = np.asarray(beliefs, dtype=np.float64)
        var_log_beliefs = np.asarray(var_log_beliefs, dtype=np.float64)

    report_means = np.stack(
        [layout.table_means(beliefs, problem, "report_numerator"),
         layout.table_means(beliefs, problem, "report_denominator")],
        axis=1,
    )
    means = layout.table_means(beliefs, problem, "feature")
    gradient = dual_gradient(means, problem.targets, problem.s2, lambdas)
    residual = float(np.max(np.abs(projected_residuals(gradient, lambdas, problem))))
    converged = residual < config.tolerance and float(final_delta) <= config.bp_tolerance
    warnings = []
    if not converged:
        warnings.append(
            f"pgmax: not converged after {n_iterations} L-BFGS-B iterations ({solution.message}); "
            f"max dual residual {residual:.2e}, last BP message change {float(final_delta):.2e}"
        )
    return FitResult(
        lambdas=lambdas,
        feature_means=means,
        report_means=report_means,
        marginals=split_variable_beliefs(var_log_beliefs, problem),
        converged=converged,
        n_iterations=n_iterations,
        n_factors=layout.n_factors,
        history=history,
        diagnostics={
            "marginals": BETHE_NOTE,
            "joint_note": JOINT_NOTE,
            "factor_graph_is_tree": is_tree(layout.scopes, len(problem.domains)),
            "optimizer_message": str(solution.message),
            "n_evaluations": n_evaluations,
            "final_bp_delta": float(final_delta),
            "max_abs_dual_residual": residual,
            "runtime_sec": time.perf_counter() - started,
        },
        warnings=tuple(warnings),
        state={"ftov_msgs": np.asarray(dual.msgs), "factor_beliefs": beliefs},
    )
