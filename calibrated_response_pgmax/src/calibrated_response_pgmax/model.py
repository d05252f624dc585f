"""Compile a ConstraintSet into a PGMax model and fit its dual."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from calibrated_response_plugins.constraints import ConstraintSet, FitResult
from calibrated_response_pgmax.config import PgmaxConfig
from calibrated_response_pgmax.layout import FactorLayout, build_layout, is_tree

BETHE_NOTE = "Bethe approximation"


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
    """Dual gradient with the components blocked by a sign bound (lambda at 0 pushing outward) zeroed."""
    blocked = np.zeros(grad.shape, dtype=bool)
    for k, relation in enumerate(problem.relations):
        if relation == "ge":
            blocked[k] = lambdas[k] <= 0 and grad[k] > 0
        elif relation == "le":
            blocked[k] = lambdas[k] >= 0 and grad[k] < 0
    return np.where(blocked, 0.0, grad)


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
        history={"iteration": [], "max_residual": [], "bp_delta": []},
        diagnostics={"marginals": BETHE_NOTE, "factor_graph_is_tree": True},
    )


def fit_model(
    model: PgmaxModel,
    config: PgmaxConfig,
    progress: Callable[[int, int, dict], None] | None = None,
) -> FitResult:
    """Minimise the Bethe dual with Adam on BP moments; return the core FitResult."""
    import jax.numpy as jnp

    from calibrated_response_pgmax import engine

    problem, layout, graph = model.problem, model.layout, model.graph
    if not problem.constraints:
        return _empty_result(model)

    started = time.perf_counter()
    statics = engine.make_statics(layout, graph, problem.targets, problem.s2, problem.lambda_bounds())
    optimizer = engine.make_optimizer(config)
    chunk = engine.build_chunk(graph, statics, layout, optimizer, config)
    lambdas = jnp.zeros(len(problem.constraints), dtype=jnp.float32)
    state = engine.DualState(lambdas, optimizer.init(lambdas), jnp.asarray(graph.initial_arrays.ftov_msgs))

    history: dict[str, list] = {"iteration": [], "max_residual": [], "bp_delta": []}
    done, converged = 0, False
    while done < config.max_iterations and not converged:
        state, info = chunk(state)
        done += config.chunk_size
        residual, delta = float(info.max_residual[-1]), float(info.bp_delta[-1])
        history["iteration"].append(done)
        history["max_residual"].append(residual)
        history["bp_delta"].append(delta)
        converged = residual < config.tolerance and delta <= config.bp_tolerance
        if progress is not None:
            progress(min(done, config.max_iterations), config.max_iterations,
                     {"max_residual": residual, "bp_delta": delta})

    final = engine.build_final(graph, statics, layout, config)
    beliefs, var_log_beliefs, _, final_delta = final(state.lambdas, state.ftov_msgs)
    beliefs = np.asarray(beliefs, dtype=np.float64)
    report_means = np.stack(
        [layout.table_means(beliefs, problem, "report_numerator"),
         layout.table_means(beliefs, problem, "report_denominator")],
        axis=1,
    )
    lambdas = np.asarray(state.lambdas, dtype=np.float64)
    means = layout.table_means(beliefs, problem, "feature")
    residuals = projected_residuals(means - problem.targets + problem.s2 * lambdas, lambdas, problem)
    warnings = []
    if not converged:
        warnings.append(
            f"pgmax: not converged after {done} dual updates "
            f"(max residual {history['max_residual'][-1]:.2e}, BP message change {history['bp_delta'][-1]:.2e})"
        )
    return FitResult(
        lambdas=lambdas,
        feature_means=means,
        report_means=report_means,
        marginals=split_variable_beliefs(np.asarray(var_log_beliefs), problem),
        converged=converged,
        n_iterations=done,
        n_factors=layout.n_factors,
        history=history,
        diagnostics={
            "marginals": BETHE_NOTE,
            "factor_graph_is_tree": is_tree(layout.scopes, len(problem.domains)),
            "final_bp_delta": float(final_delta),
            "max_abs_dual_residual": float(np.max(np.abs(residuals))),
            "runtime_sec": time.perf_counter() - started,
        },
        warnings=tuple(warnings),
        state={"ftov_msgs": np.asarray(state.ftov_msgs), "factor_beliefs": beliefs},
    )
