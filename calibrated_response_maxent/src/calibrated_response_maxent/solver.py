"""Exact solve of the maximum-entropy dual on the dense joint (``docs/semantics.md``).

The dual is

    f(lambda) = log Z(lambda) - lambda . c + 1/2 sum_k s_k^2 lambda_k^2,

with ``Z`` taken against the uniform base measure (so ``f(0) = 0``), gradient
``E[g] - c + s^2 lambda`` and Hessian ``Cov(g) + diag(s^2)``. L-BFGS-B does the
bulk of the work; projected Newton steps on the exact Hessian finish the job
when it stops above ``gtol``. Each independent component of the model is
enumerated as its own dense joint; ``log Z`` is the sum over components.
"""

from __future__ import annotations

import string
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from calibrated_response_plugins import dual
from calibrated_response_plugins.constraints import FitResult
from scipy.optimize import minimize
from threadpoolctl import ThreadpoolController

from calibrated_response_maxent.config import MaxentConfig
from calibrated_response_maxent.model import Component, DenseModel, ScopeGroup, axes_outside

Progress = Callable[[int, int, dict], None]

_THREADPOOLS: list[ThreadpoolController] = []


def blas_threadpools() -> ThreadpoolController:
    """The process's thread pools, inspected once (each inspection walks the loaded libraries)."""
    if not _THREADPOOLS:
        _THREADPOOLS.append(ThreadpoolController())
    return _THREADPOOLS[0]

LBFGSB_MEMORY = 30
MAX_BACKTRACKS = 40
#: a line search stops at a lower point whose slope is at most this fraction of the start's.
LINE_SLOPE = 0.1
#: a Newton step that shrinks the projected gradient below this fraction lets the next reuse its Hessian.
KEEP_HESSIAN_BELOW = 0.1


class ComponentState(NamedTuple):
    """One component's joint at the current multipliers."""

    probabilities: np.ndarray  # component shape, sums to 1
    log_partition: float  # log of the mean of exp(potential) over the component's joint
    scope_marginals: tuple[np.ndarray, ...]  # one per scope group of the component


class DualPoint(NamedTuple):
    """The dual evaluated at one multiplier vector."""

    lambdas: np.ndarray  # (K,)
    objective: float
    gradient: np.ndarray  # (K,)
    feature_means: np.ndarray  # (K,) E[g_k]
    log_partition: float  # sum over components
    components: tuple[ComponentState, ...]  # one per model component
    scope_marginals: tuple[np.ndarray, ...]  # every group's, in the order of DenseModel.groups


def log_potential(component: Component, lambdas: np.ndarray) -> np.ndarray:
    """``sum_k lambda_k g_k(x)`` on the component's joint, one broadcast table per scope."""
    potential = np.zeros(component.shape, dtype=np.float64)
    for group in component.groups:
        n_rows = len(group.constraint_indices)
        table = lambdas[group.constraint_indices] @ group.features.reshape(n_rows, -1)
        potential += table.reshape(group.broadcast_shape)
    return potential


def normalise(potential: np.ndarray) -> tuple[np.ndarray, float]:
    """Joint probabilities ``exp(potential) / Z`` and ``log`` of the mean of ``exp(potential)``.

    The largest potential is subtracted before exponentiating (log-sum-exp), and
    the probabilities are divided by their own sum so they sum to 1 even when
    the multipliers are huge.
    """
    shift = float(potential.max())
    weights = np.exp(potential - shift)
    total = float(weights.sum())
    weights /= total
    return weights, shift + float(np.log(total)) - float(np.log(potential.size))


def component_state(component: Component, lambdas: np.ndarray) -> ComponentState:
    """Normalised joint of one component and its scope marginals, each summed once."""
    probabilities, log_partition = normalise(log_potential(component, lambdas))
    return ComponentState(probabilities, log_partition, scope_marginals_of(component, probabilities))


def scope_marginals_of(component: Component, probabilities: np.ndarray) -> tuple[np.ndarray, ...]:
    """Each group's scope marginal (axes ascending), the widest scopes first.

    A scope inside one already summed (a variable of a pair scope, say) is summed from
    that smaller table instead of from the whole joint, so the joint is passed over
    once per scope no other contains; ``einsum`` does each pass.
    """
    n_axes = len(component.shape)
    done: dict[tuple[int, ...], np.ndarray] = {}
    for group in sorted(component.groups, key=lambda g: -len(g.axes)):
        axes = tuple(sorted(group.axes))
        if axes in done:
            continue
        source = min((kept for kept in done if set(axes) <= set(kept)), key=lambda kept: done[kept].size, default=None)
        if source is None:
            done[axes] = np.einsum(probabilities, list(range(n_axes)), list(axes))
        else:
            done[axes] = np.einsum(done[source], list(source), list(axes))
    return tuple(done[tuple(sorted(group.axes))] for group in component.groups)


def expectations(
    model: DenseModel, scope_marginals: tuple[np.ndarray, ...], table_field: str = "features"
) -> np.ndarray:
    """``E[t_k]`` for each constraint's table ``t_k`` (``features`` or a report table).

    The detached groups are left at 0, which is their features' mean (the features are
    zero); :func:`report_expectations` fills their report tables in.
    """
    means = np.zeros(model.n_constraints, dtype=np.float64)
    for group, marginal in zip(model.groups, scope_marginals):
        tables = getattr(group, table_field)
        means[group.constraint_indices] = tables.reshape(tables.shape[0], -1) @ marginal.reshape(-1)
    return means


def evaluate_dual(model: DenseModel, lambdas: np.ndarray) -> DualPoint:
    """Objective, gradient and model moments of the dual at ``lambdas``."""
    lambdas = np.asarray(lambdas, dtype=np.float64)
    states = tuple(component_state(component, lambdas) for component in model.components)
    log_partition = sum(state.log_partition for state in states)
    scope_marginals = tuple(marginal for state in states for marginal in state.scope_marginals)
    feature_means = expectations(model, scope_marginals)
    objective = log_partition - float(lambdas @ model.targets) + 0.5 * float(lambdas @ (model.s2 * lambdas))
    gradient = dual.dual_gradient(feature_means, model.targets, model.s2, lambdas)
    return DualPoint(lambdas, objective, gradient, feature_means, log_partition, states, scope_marginals)


def detached_marginal(model: DenseModel, point: DualPoint, group: ScopeGroup) -> np.ndarray:
    """The scope marginal of a detached group: the product of its components' marginals on it."""
    letters = string.ascii_letters
    operands, subscripts = [], []
    for component, state in zip(model.components, point.components):
        inside = [(position, component.variables.index(variable))
                  for position, variable in enumerate(group.scope) if variable in component.variables]
        if not inside:
            continue
        kept = tuple(axis for _, axis in inside)
        marginal = state.probabilities.sum(axis=axes_outside(kept, len(component.shape)))
        order = np.argsort(kept)  # the sum keeps the component's axis order
        operands.append(marginal)
        subscripts.append("".join(letters[inside[i][0]] for i in order))
    return np.einsum(",".join(subscripts) + "->" + letters[: group.arity], *operands)


def report_expectations(model: DenseModel, point: DualPoint, table_field: str) -> np.ndarray:
    """:func:`expectations` of a report table, the detached groups included."""
    means = expectations(model, point.scope_marginals, table_field)
    for group in model.detached:
        tables = getattr(group, table_field)
        means[group.constraint_indices] = np.tensordot(tables, detached_marginal(model, point, group), axes=group.arity)
    return means


def projected_gradient(model: DenseModel, point: DualPoint) -> np.ndarray:
    """The projected gradient of the dual at ``point`` (:func:`calibrated_response_plugins.dual.projected_gradient`)."""
    return dual.projected_gradient(point.lambdas, point.gradient, model.lower_bounds, model.upper_bounds)


def projected_gradient_norm(model: DenseModel, point: DualPoint) -> float:
    """Max-abs projected gradient: the convergence measure (0 for no constraints)."""
    projected = projected_gradient(model, point)
    return float(np.max(np.abs(projected))) if projected.size else 0.0


def component_covariance(
    component: Component, state: ComponentState, feature_means: np.ndarray, covariance: np.ndarray
) -> None:
    """Fill ``covariance`` for the constraints of one component, from each pair of scopes' union marginal."""
    n_axes = len(component.shape)
    letters = string.ascii_letters
    row_label, column_label = letters[-2], letters[-1]
    union_marginals: dict[tuple[int, ...], np.ndarray] = {}
    centred = [
        group.features - feature_means[group.constraint_indices].reshape((-1,) + (1,) * group.arity)
        for group in component.groups
    ]
    for a, (group_a, centred_a) in enumerate(zip(component.groups, centred)):
        for group_b, centred_b in zip(component.groups[a:], centred[a:]):
            union = tuple(sorted(set(group_a.axes) | set(group_b.axes)))
            if union not in union_marginals:
                union_marginals[union] = state.probabilities.sum(axis=axes_outside(union, n_axes))
            subscripts = "{},{}{},{}{}->{}{}".format(
                "".join(letters[i] for i in union),
                row_label,
                "".join(letters[i] for i in group_a.axes),
                column_label,
                "".join(letters[i] for i in group_b.axes),
                row_label,
                column_label,
            )
            block = np.einsum(subscripts, union_marginals[union], centred_a, centred_b, optimize=True)
            rows, columns = group_a.constraint_indices, group_b.constraint_indices
            covariance[np.ix_(rows, columns)] = block
            covariance[np.ix_(columns, rows)] = block.T


#: largest (constraints x joint cells) of a component whose covariance is one dense product.
DENSE_COVARIANCE_CELLS = 20_000_000


def dense_component_covariance(
    component: Component, state: ComponentState, feature_means: np.ndarray, covariance: np.ndarray
) -> None:
    """:func:`component_covariance` as one product of the features laid out on the joint.

    On small components the per-pair ``einsum`` calls cost more in planning than in
    arithmetic; this costs ``K x cells`` memory instead. Each scope table is centred
    and weighted by ``sqrt(p)`` straight into its rows of ``C`` (broadcast, never
    copied out first), and the covariance is the symmetric product ``C C^T``.
    """
    rows = np.concatenate([group.constraint_indices for group in component.groups])
    centred = np.empty((len(rows), component.n_states), dtype=np.float64)
    weights = np.sqrt(state.probabilities)
    start = 0
    for group in component.groups:
        n_rows = len(group.constraint_indices)
        block = centred[start:start + n_rows].reshape((n_rows,) + component.shape)
        means = feature_means[group.constraint_indices].reshape((n_rows,) + (1,) * len(component.shape))
        np.subtract(group.features.reshape((n_rows,) + group.broadcast_shape), means, out=block)
        block *= weights
        start += n_rows
    covariance[np.ix_(rows, rows)] = centred @ centred.T


def dense_covariance_fits(component: Component) -> bool:
    """Whether the component's features laid out on its joint fit :data:`DENSE_COVARIANCE_CELLS`."""
    n_rows = sum(len(group.constraint_indices) for group in component.groups)
    return n_rows * component.n_states <= DENSE_COVARIANCE_CELLS


def feature_covariance(model: DenseModel, point: DualPoint) -> np.ndarray:
    """``Cov(g)`` under the model; block diagonal, as components are independent (detached rows: 0)."""
    covariance = np.zeros((model.n_constraints, model.n_constraints), dtype=np.float64)
    for component, state in zip(model.components, point.components):
        if component.groups and dense_covariance_fits(component):
            dense_component_covariance(component, state, point.feature_means, covariance)
        else:
            component_covariance(component, state, point.feature_means, covariance)
    return covariance


def dual_hessian(model: DenseModel, point: DualPoint) -> np.ndarray:
    """Exact Hessian of the dual: ``Cov(g) + diag(s^2)``."""
    return feature_covariance(model, point) + np.diag(model.s2)


def free_multipliers(model: DenseModel, point: DualPoint) -> np.ndarray:
    """Mask of multipliers a Newton step may move: all but those held at a bound by the gradient."""
    return ~dual.held_at_bound(point.lambdas, point.gradient, model.lower_bounds, model.upper_bounds)


def clip_to_bounds(model: DenseModel, lambdas: np.ndarray) -> np.ndarray:
    """Project multipliers onto their sign bounds."""
    return dual.clip_to_bounds(lambdas, model.lower_bounds, model.upper_bounds)


def newton_step(model: DenseModel, point: DualPoint) -> DualPoint | None:
    """One projected Newton step; None if no step along it improves the point.

    The full step is taken when it lowers the projected gradient. Otherwise the
    step length comes from :func:`line_minimum`: where the joint saturates (a
    multiplier sum so large that a variable is certain) the Hessian is ``s^2``
    alone, the full step overshoots into the opposite saturation, and halving it
    until the objective decreases would bounce between the two.
    """
    return newton_candidate(model, point, dual_hessian(model, point), line_search=True)


def newton_candidate(model: DenseModel, point: DualPoint, hessian: np.ndarray, line_search: bool) -> DualPoint | None:
    """The step of :func:`newton_step` with a given Hessian; without ``line_search``, None unless the full step helps."""
    direction = dual.newton_direction(hessian, point.gradient, free_multipliers(model, point))
    candidate = evaluate_dual(model, clip_to_bounds(model, point.lambdas + direction))
    if projected_gradient_norm(model, candidate) < projected_gradient_norm(model, point):
        return candidate
    return line_minimum(model, point, direction) if line_search else None


def line_minimum(model: DenseModel, point: DualPoint, direction: np.ndarray) -> DualPoint | None:
    """The point of least objective on the segment ``lambda + t d``, ``t`` in [0, 1], by bisection.

    The dual is convex, so its slope along the segment increases with ``t``; the
    slope's sign change is bisected for, at most ``MAX_BACKTRACKS`` times, and the
    search stops early at a point below the start whose slope is at most
    ``LINE_SLOPE`` of the starting slope in size (a strong Wolfe point: the next
    Newton step takes it from there). None when no point of the segment lies below
    the start.
    """
    low, high = 0.0, 1.0
    best = None
    start_slope = abs(float(point.gradient @ direction))
    for _ in range(MAX_BACKTRACKS):
        middle = 0.5 * (low + high)
        candidate = evaluate_dual(model, clip_to_bounds(model, point.lambdas + middle * direction))
        moved = candidate.lambdas - point.lambdas
        slope = float(candidate.gradient @ moved)
        if slope > 0.0:
            high = middle
        else:
            low = middle
        if candidate.objective < point.objective and (best is None or candidate.objective < best.objective):
            best = candidate
            if abs(slope) <= LINE_SLOPE * middle * start_slope:
                break
    return best


def record(history: dict[str, list], model: DenseModel, point: DualPoint, stage: str) -> None:
    """Append one iteration's objective and projected-gradient norm to ``history``."""
    history["objective"].append(point.objective)
    history["projected_gradient"].append(projected_gradient_norm(model, point))
    history["stage"].append(stage)


def run_lbfgsb(
    model: DenseModel, config: MaxentConfig, progress: Progress | None, history: dict[str, list],
    initial: np.ndarray | None = None,
) -> tuple[DualPoint, dict]:
    """Minimise the dual with L-BFGS-B from ``initial`` (None: ``lambda = 0``); return the final point and facts."""
    last: dict[str, DualPoint] = {}

    def objective_and_gradient(lambdas):
        last["point"] = evaluate_dual(model, lambdas)
        return last["point"].objective, last["point"].gradient

    def current_point(lambdas) -> DualPoint:
        point = last.get("point")
        if point is None or not np.array_equal(point.lambdas, lambdas):
            point = evaluate_dual(model, lambdas)
        return point

    def on_iteration(lambdas):
        point = current_point(lambdas)
        record(history, model, point, "lbfgsb")
        if progress is not None:
            progress(len(history["objective"]), config.max_iterations, {
                "objective": point.objective,
                "projected_gradient": history["projected_gradient"][-1],
            })

    result = minimize(
        objective_and_gradient,
        np.zeros(model.n_constraints) if initial is None else clip_to_bounds(model, initial),
        jac=True,
        method="L-BFGS-B",
        bounds=list(zip(model.lower_bounds, model.upper_bounds)),
        callback=on_iteration,
        options={
            "maxiter": config.max_iterations,
            "maxfun": 4 * config.max_iterations,
            "maxcor": LBFGSB_MEMORY,
            "ftol": 0.0,
            "gtol": config.gtol,
        },
    )
    facts = {"lbfgsb_iterations": int(result.nit), "lbfgsb_evaluations": int(result.nfev),
             "lbfgsb_message": str(result.message)}
    return current_point(clip_to_bounds(model, result.x)), facts


def polish(
    model: DenseModel, point: DualPoint, config: MaxentConfig, history: dict[str, list]
) -> tuple[DualPoint, int, int]:
    """Projected Newton steps until the projected gradient is below ``gtol`` or no step helps.

    Returns the point, the steps and the Hessians computed. A step that shrinks the
    projected gradient to :data:`KEEP_HESSIAN_BELOW` of what it was is in Newton's
    quadratic phase, where the Hessian hardly moves: the next step tries it again (a
    chord step, which costs one evaluation instead of a Hessian) and computes a fresh
    one only when the full chord step does not lower the projected gradient.
    """
    steps, hessians, kept = 0, 0, None
    while steps < config.max_polish_steps and projected_gradient_norm(model, point) > config.gtol:
        norm = projected_gradient_norm(model, point)
        candidate = None if kept is None else newton_candidate(model, point, kept, line_search=False)
        if candidate is None:
            kept = dual_hessian(model, point)
            hessians += 1
            candidate = newton_candidate(model, point, kept, line_search=True)
        if candidate is None:
            break
        if projected_gradient_norm(model, candidate) > KEEP_HESSIAN_BELOW * norm:
            kept = None
        point = candidate
        steps += 1
        record(history, model, point, "newton")
    return point, steps, hessians


def variable_marginals(model: DenseModel, point: DualPoint) -> dict[str, np.ndarray]:
    """``{name: state probabilities}`` for every variable, in variable order.

    Each is summed from the smallest scope marginal that holds it (the joint only for a
    variable no scope names).
    """
    marginals = {}
    for component, state in zip(model.components, point.components):
        tables = {tuple(sorted(group.axes)): marginal for group, marginal in zip(component.groups, state.scope_marginals)}
        for axis, variable in enumerate(component.variables):
            holder = min((axes for axes in tables if axis in axes), key=lambda axes: tables[axes].size, default=None)
            if holder is None:
                marginal = state.probabilities.sum(axis=axes_outside((axis,), len(component.shape)))
            else:
                marginal = tables[holder].sum(axis=tuple(i for i, kept in enumerate(holder) if kept != axis))
            marginals[model.problem.domains[variable].name] = marginal
    return {name: marginals[name] for name in model.problem.names}


def solve_dual(
    model: DenseModel, config: MaxentConfig, progress: Progress | None = None,
    initial: np.ndarray | None = None,
) -> tuple[DualPoint, dict[str, list], dict]:
    """L-BFGS-B from ``initial`` then, if needed, Newton polish; return the optimum, history and solver facts."""
    history: dict[str, list] = {"objective": [], "projected_gradient": [], "stage": []}
    if model.n_constraints == 0:
        return evaluate_dual(model, np.zeros(0)), history, {"lbfgsb_iterations": 0, "newton_steps": 0, "hessians": 0}
    warm_steps = warm_hessians = 0
    if initial is not None and all(dense_covariance_fits(component) for component in model.components):
        # A warm start is usually next to the optimum, where Newton converges in a few
        # steps; L-BFGS-B would first spend iterations rebuilding its curvature memory.
        # On components too large for the dense Hessian product, one Hessian costs more
        # than those iterations.
        point, warm_steps, warm_hessians = polish(
            model, evaluate_dual(model, clip_to_bounds(model, initial)), config, history)
        if projected_gradient_norm(model, point) <= config.gtol:
            return point, history, {"lbfgsb_iterations": 0, "newton_steps": warm_steps, "hessians": warm_hessians}
        initial = point.lambdas
    point, facts = run_lbfgsb(model, config, progress, history, initial)
    point, facts["newton_steps"], facts["hessians"] = polish(model, point, config, history)
    facts["newton_steps"] += warm_steps
    facts["hessians"] += warm_hessians
    return point, history, facts


def fit_dense_model(
    model: DenseModel, config: MaxentConfig, progress: Progress | None = None,
    initial_lambdas: np.ndarray | None = None,
) -> FitResult:
    """Fit ``model`` exactly, L-BFGS-B starting at ``initial_lambdas`` (None: 0); return a :class:`FitResult`."""
    started = time.perf_counter()
    if initial_lambdas is not None and np.shape(initial_lambdas) != (model.n_constraints,):
        raise ValueError(
            f"maxent: initial_lambdas has shape {np.shape(initial_lambdas)}, the model has "
            f"{model.n_constraints} constraints"
        )
    # The BLAS work here is on K x K matrices (K = tens of constraints): extra BLAS threads
    # only spin, and on a busy machine they slow L-BFGS-B's small calls several-fold.
    with blas_threadpools().limit(limits=1, user_api="blas"):
        point, history, facts = solve_dual(model, config, progress, initial_lambdas)
    gradient_norm = projected_gradient_norm(model, point)
    converged = bool(np.isfinite(gradient_norm) and gradient_norm <= config.gtol)
    iterations = facts["lbfgsb_iterations"] + facts["newton_steps"]
    warnings = () if converged else (
        f"maxent: the dual did not converge: projected gradient {gradient_norm:.3g} > gtol {config.gtol:.3g} "
        f"after {iterations} iterations ({facts.get('lbfgsb_message', '')})",
    )
    report_means = np.column_stack([
        report_expectations(model, point, "report_numerators"),
        report_expectations(model, point, "report_denominators"),
    ])
    return FitResult(
        lambdas=point.lambdas,
        feature_means=point.feature_means,
        report_means=report_means.reshape(model.n_constraints, 2),
        marginals=variable_marginals(model, point),
        converged=converged,
        n_iterations=iterations,
        n_factors=len(model.groups) + len(model.detached),
        history=history,
        diagnostics={
            **facts,
            "projected_gradient_norm": gradient_norm,
            "iterations": iterations,
            "dual_objective": point.objective,
            "log_partition": point.log_partition,
            "n_joint_states": model.n_joint_states,
            "n_enumerated_states": model.n_enumerated_states,
            "n_components": len(model.components),
            "joint_note": (
                f"exact marginals of the dense joint ({model.n_joint_states:,} states, enumerated as "
                f"{len(model.components)} independent component(s)); the joint itself is not returned"
            ),
            "runtime_sec": time.perf_counter() - started,
        },
        warnings=warnings,
        state=model,
    )
