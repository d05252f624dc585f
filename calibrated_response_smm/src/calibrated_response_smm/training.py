"""Stochastic moment matching: persistent chains, Rao-Blackwellised moments, dual steps.

One iteration advances the persistent chains by a few chromatic Gibbs sweeps at the
current factor tables, reads the Rao-Blackwellised table moments the sweeps
accumulated, and steps on the dual ``log Z - lambda.c + 1/2 s^2 lambda^2`` along
``c - E[g] - s^2 lambda``:

* ``newton``: preconditioned by ``Cov_chains(g) + diag(s^2)`` (the dual's Hessian,
  estimated from the chains), free multipliers only when a sign bound is active;
* ``adam``: optax's Adam scaling of the same direction;
* ``sgd``: the direction itself;

each an optax transformation of :mod:`.dual_step`.

Iterations run in ``lax.scan`` chunks; between chunks Python reports progress and
checks convergence (every moment error within ``tolerance`` plus three Monte Carlo
standard errors). A final phase decays the step and averages the multipliers
(Polyak); the answer is the average, and its marginals and moments are averaged over
``final_sweeps`` sweeps of all chains.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from . import checkpoint
from .certificate import certify
from .config import SMMConfig
from .diagnostics import max_moment_error, mean_moment_error
from .distributed import host_get
from .dual_step import (
    ChainStatistics,
    PolyakState,
    dual_transformation,
    held_at_sign_bound,
    polyak_init,
    polyak_update,
)
from .features import (
    LayoutShape,
    TableLayout,
    build_layout,
    moment_rows_to_tables,
    moment_rows_to_tables_host,
    unpad_tables,
)
from .graph import FactorGraph
from .polish import denominators, feature_means, newton_step, scaled_gradient
from .scope_moments import HostScopePlan, ScopePlan, build_scope_plan, cell_log_probabilities, chain_log_mean, flat_tables
from .mcmc.kernels import (
    SWEEP_COMPILER_OPTIONS,
    HostPlan,
    SweepPlan,
    build_plan,
    make_rows,
    move_rate,
    seed_words,
    zero_accumulators,
)
from .mcmc.gibbs import GibbsKernel, GibbsState, build_kernel
from .mcmc.sharding import chain_devices
from .targets import (
    MomentObjective,
    MomentTarget,
    MomentTargets,
    TableTargets,
    ascent,
    chain_values,
    init_params,
    moment_objective,
    params_to_tables,
    project,
    table_objective,
)


class Static(NamedTuple):
    """Compile-time settings (hashable): equal values reuse the compiled chunk."""

    shape: LayoutShape
    optimizer: str
    sweeps: int
    temperature: float
    grad_clip: float | None
    logit_clip: float
    tolerance: float
    devices: int = 1  # chains split across this many local devices


class TrainState(NamedTuple):
    """Everything an iteration carries (device pytree)."""

    x: jax.Array  # i32[V + 1, C]: persistent chains
    params: Any  # f32[K] multipliers, or bucket tables
    opt_state: Any  # the dual transformation's optax state
    average: Any  # Polyak average of params
    n_average: jax.Array  # f32[]: iterations averaged
    seed: jax.Array  # u32[2]: random stream of the chains
    counter: jax.Array  # u32[]: sweeps done (position in the stream)


class IterationInfo(NamedTuple):
    max_error: jax.Array
    mean_error: jax.Array
    converged: jax.Array
    acceptance: jax.Array


def factor_tables(static: Static, objective, params):
    tables = params_to_tables(objective, params, static.shape)
    return tuple(jnp.clip(t, -static.logit_clip, static.logit_clip) for t in tables)


# The Newton step uses the chains' full feature covariance only for at most this many
# multipliers, and at least CHAINS_PER_MULTIPLIER chains per multiplier; otherwise the
# variances alone (a diagonal preconditioner), and no final polish runs (it needs the
# same matrix). The full covariance costs K^2 C per iteration and its solve K^3, and
# from fewer chains than multipliers it is singular: on a synthetic 1,000-variable
# problem (2,499 constraints, 2,048 chains) the dense step did not converge in 200
# iterations (570 s) where the diagonal one did in 170 (198 s).
DENSE_NEWTON_MAX = 1024
CHAINS_PER_MULTIPLIER = 4


def _dense_newton(objective, num_chains: int) -> bool:
    k = objective.target.shape[0]
    return k <= DENSE_NEWTON_MAX and k * CHAINS_PER_MULTIPLIER <= num_chains


def _values_every_sweep(objective) -> bool:
    """Whether the final estimate reads every chain's feature values after each sweep.

    Above ``DENSE_NEWTON_MAX`` constraints only after each evaluation (``scope_every``
    sweeps): ``[K, C]`` values per sweep would cost more than the sweep.
    """
    return objective.target.shape[0] <= DENSE_NEWTON_MAX


def _chain_statistics(objective: MomentObjective, x, n_states, dense: bool = True):
    """Per-chain feature values ``[K, C]`` and their covariance ``[K, K]`` (``dense``) or variances ``[K]``."""
    values = chain_values(objective, x, n_states)
    mean = values.mean(axis=1)
    if not dense:
        return values, jnp.maximum(jnp.mean(values * values, axis=1) - mean * mean, 0.0)
    return values, values @ values.T / values.shape[1] - jnp.outer(mean, mean)


def _projected(objective, params, grad):
    """Residuals that count toward convergence (none where a sign bound is rightly active)."""
    if isinstance(objective, MomentObjective):
        return jnp.where(held_at_sign_bound(objective, params, grad), 0.0, grad)
    return jnp.concatenate([(g * m).reshape(-1) for g, m in zip(grad, objective.mask)])


def _kernel(static: Static, plan: SweepPlan, n_sweeps: int) -> GibbsKernel:
    """The Gibbs kernel of ``n_sweeps`` sweeps per step at ``static``'s settings."""
    return build_kernel(plan, static.shape, n_sweeps, temperature=static.temperature, devices=static.devices)


def iteration(static: Static, plan: SweepPlan, objective, state: TrainState, lr, averaging):
    """Sweeps at the current tables, then one dual step (pure); also returns the sweeps' sums."""
    rows = make_rows(plan, static.shape, factor_tables(static, objective, state.params))
    gibbs, acc = _kernel(static, plan, static.sweeps).step(GibbsState(state.x, state.seed, state.counter), rows)
    x = gibbs.x
    moments = moment_rows_to_tables(static.shape, acc.moments / acc.sweeps)
    grad = ascent(objective, state.params, moments)
    extra = {}
    if isinstance(objective, MomentObjective):
        # the full covariance only where the Newton step solves with it
        dense = static.optimizer == "newton" and _dense_newton(objective, x.shape[1])
        values, curvature = _chain_statistics(objective, x, static.shape.n_states, dense)
        variance = jnp.diag(curvature) if dense else curvature
        if static.optimizer == "newton":
            extra["chains"] = ChainStatistics(values, curvature)
    else:
        flat = jnp.concatenate([m.reshape(-1) for m in moments])
        variance = flat * (1.0 - flat)
    transformation = dual_transformation(static.optimizer, objective, static.grad_clip)
    step, opt_state = transformation.update(grad, state.opt_state, state.params, **extra)
    params = project(objective, jax.tree.map(lambda p, s: p + lr * s, state.params, step))
    average, n_average = polyak_update(PolyakState(state.average, state.n_average), params, averaging)

    residual = _projected(objective, state.params, grad)
    stderr = jnp.sqrt(jnp.maximum(variance, 0.0) / x.shape[1])
    info = IterationInfo(
        max_error=max_moment_error(residual),
        mean_error=mean_moment_error(residual),
        converged=jnp.all(jnp.abs(residual) <= static.tolerance + 3.0 * stderr),
        acceptance=move_rate(plan, acc),
    )
    new_state = TrainState(x, params, opt_state, average, n_average, state.seed, state.counter + static.sweeps)
    return new_state, info, acc


@functools.partial(jax.jit, static_argnums=(0, 3))
def init_state(static: Static, plan: SweepPlan, objective, num_chains: int, seed):
    """Uniform chains (exactly the zero-parameter model) and zero parameters."""
    params = init_params(objective)
    opt_state = dual_transformation(static.optimizer, objective, static.grad_clip).init(params)
    zeros = polyak_init(params).average
    x = _kernel(static, plan, static.sweeps).init(seed, num_chains).x
    return TrainState(x, params, opt_state, zeros, jnp.zeros((), jnp.float32), seed, jnp.zeros((), jnp.uint32))


@functools.partial(jax.jit, static_argnums=0, donate_argnums=3, compiler_options=SWEEP_COMPILER_OPTIONS)
def run_chunk(static: Static, plan: SweepPlan, objective, state: TrainState, lrs, averaging):
    """``len(lrs)`` iterations under ``lax.scan``.

    Returns the new state, per-iteration :class:`IterationInfo`, and the
    Rao-Blackwellised sums of every sweep in the chunk (for the final estimate,
    run with ``lrs = 0``). ``state`` is donated: the new state takes over its buffers
    (at 30 million multipliers, 0.4 GB less memory and 10% less time), so pass the
    returned state on and do not read the old one.
    """

    def body(carry, inputs):
        state, total = carry
        state, info, acc = iteration(static, plan, objective, state, *inputs)
        total = jax.tree.map(jnp.add, total, acc)
        return (state, total), info

    (state, total), infos = jax.lax.scan(body, (state, zero_accumulators(static.shape)), (lrs, averaging))
    return state, infos, total


@functools.partial(jax.jit, static_argnums=(0, 4, 5, 6, 7), compiler_options=SWEEP_COMPILER_OPTIONS)
def estimate_chunk(static: Static, plan: SweepPlan, objective, scope: ScopePlan | None, n_segments: int,
                   n_evaluations: int, every: int, covariance: bool, spread: MomentObjective | None,
                   state: TrainState):
    """``n_evaluations * every`` sweeps at fixed parameters (no dual step).

    Returns the new state, the sweeps' Rao-Blackwellised sums, the sum over
    evaluations (one after every ``every`` sweeps) of the scope estimator's cell means
    (zeros when ``scope`` is None), with ``covariance`` the sum over evaluations of
    the chains' feature covariance ``[K, K]`` (else a zero), and with a ``spread``
    objective (:func:`spread_targets`) each chain's sum of its feature values ``[K', C]``
    (else a zero): over sweeps, or over evaluations where :func:`_values_every_sweep`
    is false; with ``spread`` and a ``scope``, also each chain's sum over evaluations of
    its scope cell probabilities ``[N, C]`` (else a zero).
    """
    tables = factor_tables(static, objective, state.params)
    rows = make_rows(plan, static.shape, tables)
    flat = flat_tables(tables)

    one, several = _kernel(static, plan, 1), _kernel(static, plan, every)

    def advance(kernel, x, acc, counter):
        gibbs, sums = kernel.step(GibbsState(x, state.seed, counter), rows)
        return gibbs.x, jax.tree.map(jnp.add, acc, sums)

    def sweep_and_count(carry, counter):  # one sweep, then every chain's feature values
        x, acc, values = carry
        x, acc = advance(one, x, acc, counter)
        return (x, acc, values + chain_values(spread, x, static.shape.n_states)), None

    def body(carry, i):
        x, acc, cells, cov, values, chain_cells = carry
        counter = state.counter + i * every
        if spread is not None and _values_every_sweep(objective):
            sweeps = counter + jnp.arange(every, dtype=jnp.uint32)
            (x, acc, values), _ = jax.lax.scan(sweep_and_count, (x, acc, values), sweeps)
        else:
            x, acc = advance(several, x, acc, counter)
            if spread is not None:
                values = values + chain_values(spread, x, static.shape.n_states)
        if scope is not None:
            log_p = cell_log_probabilities(scope, flat, x, n_segments)
            cells = jnp.logaddexp(cells, chain_log_mean(log_p))
            if spread is not None:
                chain_cells = chain_cells + jnp.exp(log_p)
        if covariance:
            cov = cov + _chain_statistics(objective, x, static.shape.n_states)[1]
        return (x, acc, cells, cov, values, chain_cells), None

    cells = jnp.full(() if scope is None else scope.segment.shape, -jnp.inf, jnp.float32)
    k = objective.target.shape[0] if covariance else 0
    cov = jnp.zeros((k, k) if covariance else (), jnp.float32)
    values = jnp.zeros((spread.target.shape[0], state.x.shape[1]) if spread is not None else (), jnp.float32)
    chain_cells = jnp.zeros((scope.segment.shape[0], state.x.shape[1]) if spread is not None and scope is not None else (),
                            jnp.float32)
    steps = jnp.arange(n_evaluations, dtype=jnp.uint32)
    carry = (state.x, zero_accumulators(static.shape), cells, cov, values, chain_cells)
    (x, acc, cells, cov, values, chain_cells), _ = jax.lax.scan(body, carry, steps)
    return state._replace(x=x, counter=state.counter + n_evaluations * every), acc, cells, cov, values, chain_cells


# -- host side ---------------------------------------------------------------------


class Program(NamedTuple):
    """The device arrays one fit runs on (built once per model)."""

    plan: SweepPlan
    objective: Any  # MomentObjective or TableObjective
    spread: MomentObjective | None  # the constraints and ratio denominators (see spread_targets)


@attrs.frozen(eq=False)
class SMMModel:
    """A graph with its targets, laid out and coloured for the sampler (built once)."""

    graph: FactorGraph
    targets: MomentTargets | TableTargets
    layout: TableLayout
    plan: HostPlan
    l2_regularization: float = 1e-3
    devices: int = 1  # chains split across this many local devices (the plan's blocks fit one share)

    @classmethod
    def build(
        cls, graph: FactorGraph, targets, num_chains: int, l2_regularization: float = 1e-3, pad: bool = True,
        devices: int | None = None,
    ) -> SMMModel:
        """Lay out and colour ``graph``; ``devices`` as :func:`.mcmc.sharding.chain_devices` resolves it."""
        n_multipliers = (
            len(targets.constraints) if isinstance(targets, MomentTargets) else sum(f.parameters.size for f in graph.factors)
        )
        devices = chain_devices(devices, num_chains, graph.n_vars, n_multipliers)
        layout = build_layout(graph, pad=pad)
        plan = build_plan(graph, layout, num_chains // devices, pad=pad)
        return cls(graph, targets, layout, plan, float(l2_regularization), devices)

    @functools.cached_property
    def program(self) -> Program:
        """Plan, objective and spread objective on the device, built on first use and kept."""
        if isinstance(self.targets, MomentTargets):
            objective = moment_objective(self.layout, self.targets)
            spread = moment_objective(self.layout, spread_targets(self.targets))
        else:
            objective, spread = table_objective(self.layout, self.graph, self.targets, self.l2_regularization), None
        return Program(self.plan.device(), objective, spread)

    def objective(self):
        return self.program.objective


@attrs.frozen(eq=False)
class SMMFit:
    """The fitted model: parameters, table moments per factor, marginals per variable."""

    graph: FactorGraph  # factor parameters are the fitted tables
    params: Any  # multipliers [K] (moment targets) or one table per factor
    table_moments: list  # per factor: E[1{x_f = cell}], unpadded
    marginals: list  # per variable: state probabilities
    converged: bool
    n_iterations: int
    history: dict
    diagnostics: dict
    state: Any = None  # final chains and key, to continue sampling


def _seed(rng) -> np.ndarray:
    """uint32[2] stream seed from an int (or an existing seed array)."""
    if rng is None:
        rng = 0
    if isinstance(rng, (int, np.integer)):
        return seed_words(int(rng))
    return np.asarray(rng, dtype=np.uint32).reshape(2)


def _record(history, infos, start_iteration, seconds, averaging):
    n = len(np.asarray(infos.max_error))
    history["iteration"].extend(range(start_iteration + 1, start_iteration + n + 1))
    history["max_error"].extend(np.asarray(infos.max_error, dtype=float).tolist())
    history["mean_error"].extend(np.asarray(infos.mean_error, dtype=float).tolist())
    history["acceptance"].extend(np.asarray(infos.acceptance, dtype=float).tolist())
    history["runtime"].extend([seconds / n] * n)
    history["averaging"].extend([bool(averaging)] * n)


def _host_tables(model: SMMModel, params) -> list[np.ndarray]:
    """Factor tables of the answer, per graph factor (float64, unpadded)."""
    if isinstance(model.targets, MomentTargets):
        tables = [np.zeros(f.table_shape) for f in model.graph.factors]
        for lam, constraint in zip(np.asarray(params, np.float64), model.targets.constraints):
            tables[constraint.factor_id] = tables[constraint.factor_id] + lam * constraint.feature
        return tables
    return unpad_tables(model.layout, model.graph, params)


def rare_condition_factors(model: SMMModel, table_moments, threshold: float) -> tuple[int, ...]:
    """Factors carrying a conditional whose condition has probability below ``threshold``.

    Their ratio ``E[w_AC] / E[w_C]`` is where sampled indicators are too sparse; the
    final estimate Rao-Blackwellises their whole scope instead.
    """
    if not isinstance(model.targets, MomentTargets):
        return ()
    rare = {
        c.factor_id
        for c in model.targets.constraints
        if c.denominator is not None and float(np.sum(table_moments[c.factor_id] * c.denominator)) < threshold
    }
    return tuple(sorted(rare))


def _host_table_moments(model: SMMModel, total) -> list[np.ndarray]:
    """Per-factor table moments from a chunk's accumulated sums."""
    rows = np.asarray(total.moments, np.float64) / max(float(total.sweeps), 1.0)
    return unpad_tables(model.layout, model.graph, moment_rows_to_tables_host(model.layout.shape, rows))


class FinalEstimate(NamedTuple):
    """Moments and marginals averaged over the final sweeps at fixed multipliers."""

    state: TrainState
    table_moments: list  # per graph factor, unpadded; scope-wise where a factor's condition is rare
    marginal_sum: np.ndarray  # [V + 1, S] mean state indicators
    sweeps: float  # sweeps averaged (burn-in excluded)
    changed: float
    covariance: np.ndarray | None  # [K, K] chains' feature covariance (for the polish)
    stderr: float  # largest standard error of a constraint mean, report units (nan: not measured)
    total_sweeps: int  # sweeps run, burn-in included


def spread_targets(targets: MomentTargets) -> MomentTargets:
    """The constraints, then one row per ratio constraint: its denominator ``1_C``.

    The final estimate reads each chain's average of these features: a ratio's
    reported value ``E[num] / E[den]`` carries the error of its denominator too.
    """
    extra = [MomentTarget(c.factor_id, c.denominator, 0.0, 1.0) for c in targets.constraints if c.denominator is not None]
    return MomentTargets(tuple(targets.constraints) + tuple(extra))


def _chain_stderr(model: SMMModel, chain_means, table_moments) -> float:
    """Largest standard error over constraints of the final means, in report units.

    ``chain_means[k, c]`` is chain ``c``'s own average of feature ``k`` of
    :func:`spread_targets`: one independent draw per chain, however slowly the chain
    mixes, so their spread over chains gives the error of the chains' mean,
    autocorrelation included (an upper bound for the Rao-Blackwellised means). A ratio
    ``r = E[num] / E[den]`` (with ``g = num - t den``) is linearised per chain,
    ``(g - (r - t) den) / E[den]``, with ``r - t = E[g] / E[den]``: where the fitted
    ratio is far from its target ``t``, the denominator's error counts as much as the
    feature's.
    """
    if chain_means.shape[1] < 2:
        return 0.0
    targets = model.targets
    n = len(targets.constraints)
    scale = np.maximum(denominators(targets, table_moments), 1e-12)
    linear = np.array(chain_means[:n], np.float64)
    ratios = [k for k, c in enumerate(targets.constraints) if c.denominator is not None]
    if ratios:
        offset = feature_means(targets, table_moments)[ratios] / scale[ratios]
        linear[ratios] -= offset[:, None] * chain_means[n : n + len(ratios)]
    stderr = linear.std(axis=1, ddof=1) / math.sqrt(chain_means.shape[1])
    return float(np.max(stderr / scale, initial=0.0))


def _chain_means(model: SMMModel, values, n_reads: int, chain_cells, n_evaluations: int,
                 scope_plan: HostScopePlan | None) -> np.ndarray:
    """Each chain's average of every feature of :func:`spread_targets`, ``[K', C]``.

    From the feature values read along the chain, except for the factors the scope
    estimator measures: there from the chain's average scope cell probabilities, the
    quantity that estimator averages over chains.
    """
    features = spread_targets(model.targets).constraints
    means = np.asarray(values, np.float64)[: len(features)] / n_reads
    if scope_plan is not None:
        cells = scope_plan.cells(np.asarray(chain_cells, np.float64) / n_evaluations)
        for k, c in enumerate(features):
            if c.factor_id in cells:
                means[k] = c.feature.reshape(-1) @ cells[c.factor_id]
    return means


def _final_estimate(model: SMMModel, config: SMMConfig, static: Static, plan, objective, state,
                    scope_plan: HostScopePlan | None, covariance: bool = False) -> FinalEstimate:
    """Burn in, then average the moments and marginals over ``final_sweeps`` sweeps or more.

    The ratio factors' tables (``scope_plan``) come from the scope-wise estimator; with
    ``covariance`` the chains' feature covariance is averaged over the same evaluations.
    Where the chains mix slowly, one batch of ``final_sweeps`` leaves the means too
    noisy: batches are added while the standard error of a constraint mean (measured
    from the spread of the per-chain averages) exceeds ``final_tolerance``, up to
    ``max_final_sweeps``.
    """
    every = max(int(config.scope_every), 1)
    scope = None if scope_plan is None else scope_plan.device()
    n_segments = 0 if scope_plan is None else scope_plan.n_segments
    total_sweeps = 0
    if config.burn_in_sweeps:
        n_burn = math.ceil(config.burn_in_sweeps / every)
        state, *_ = estimate_chunk(static, plan, objective, None, 0, n_burn, every, False, None, state)
        total_sweeps += n_burn * every
    spread_objective = model.program.spread
    spread = spread_objective is not None
    n_batch = math.ceil(config.final_sweeps / every)
    sums = None
    n_evaluations = 0
    while True:
        state, *batch = estimate_chunk(static, plan, objective, scope, n_segments, n_batch, every, covariance,
                                       spread_objective, state)
        batch = host_get(batch)  # per-chain sums may be split across processes
        if sums is None:
            sums = batch
        else:  # moments add; the scope estimator's cell means add in logs
            acc, cells, cov, values, chain_cells = sums
            sums = (jax.tree.map(np.add, acc, batch[0]), np.logaddexp(cells, batch[1]), cov + batch[2],
                    values + batch[3], chain_cells + batch[4])
        n_evaluations += n_batch
        total_sweeps += n_batch * every
        acc, cells, cov, values, chain_cells = sums
        sweeps = float(acc.sweeps)
        moments = np.asarray(acc.moments, np.float64) / sweeps
        table_moments = unpad_tables(model.layout, model.graph, moment_rows_to_tables_host(static.shape, moments))
        if scope_plan is not None:
            for fid, table in scope_plan.tables(np.asarray(cells, np.float64) - math.log(n_evaluations)).items():
                table_moments[fid] = table
        if spread:
            n_reads = n_evaluations * every if _values_every_sweep(objective) else n_evaluations
            chain_means = _chain_means(model, values, n_reads, chain_cells, n_evaluations, scope_plan)
            stderr = _chain_stderr(model, chain_means, table_moments)
        else:
            stderr = float("nan")
        if not stderr > config.final_tolerance or (n_evaluations + n_batch) * every > config.max_final_sweeps:
            break
    marginals = np.asarray(acc.marginals, np.float64) / sweeps
    k = len(model.targets.constraints) if covariance else 0
    chain_cov = np.asarray(cov, np.float64)[:k, :k] / n_evaluations if covariance else None
    return FinalEstimate(state, table_moments, marginals, sweeps, float(acc.changed), chain_cov, stderr, total_sweeps)


def _off_optimum(model: SMMModel, config: SMMConfig, estimate: FinalEstimate) -> bool:
    """Whether the final means put the multipliers measurably off the optimum.

    True when a dual gradient entry (report units) exceeds ``tolerance`` plus twice the
    means' standard error: the averaged multipliers missed by more than the final
    estimate's noise, which a Newton step from these precise means corrects.
    """
    params = np.asarray(jax.device_get(estimate.state.params), np.float64)[: len(model.targets.constraints)]
    gradient = scaled_gradient(model.targets, params, estimate.table_moments)
    return bool(np.max(np.abs(gradient), initial=0.0) > config.tolerance + 2.0 * estimate.stderr)


def _polish(model: SMMModel, config: SMMConfig, static: Static, plan, objective, estimate: FinalEstimate,
            scope_plan: HostScopePlan | None) -> tuple[FinalEstimate, int, int]:
    """Up to ``polish_steps`` Newton steps from the final moments (see :mod:`.polish`).

    Each step is taken from the last estimate's moments and re-estimated at its
    multipliers; a further step only while that estimate is off the optimum
    (:func:`_off_optimum`). A step is not judged by the re-estimate's gradient: where
    a ratio's fitted value is far from its target, that gradient carries the
    denominator's noise magnified (on fbarch_tiny_20 it read 0.0125 at a step that
    had brought the reported ratio from 0.0215 to 0.0014 of the exact one).
    Returns the last estimate, the steps taken and the sweeps all the estimates ran.
    """
    n = len(model.targets.constraints)
    steps = 0
    sweeps = estimate.total_sweeps
    while steps < config.polish_steps and (steps == 0 or _off_optimum(model, config, estimate)):
        params = np.asarray(jax.device_get(estimate.state.params), np.float64)
        params[:n] = newton_step(model.targets, params[:n], estimate.table_moments, estimate.covariance)
        state = estimate.state._replace(params=jnp.asarray(params, jnp.float32))
        estimate = _final_estimate(model, config, static, plan, objective, state, scope_plan, covariance=True)
        sweeps += estimate.total_sweeps
        steps += 1
    return estimate, steps, sweeps


def fit_model(
    model: SMMModel,
    config: SMMConfig,
    progress: Callable[[int, int, dict], None] | None = None,
    rng=None,
    initial_state: TrainState | None = None,
) -> SMMFit:
    """Run the full schedule: search until converged, average, estimate (see module doc).

    Every phase runs the same compiled chunk: the averaging phase with a decaying
    step, the burn-in and final estimate with step 0 at the averaged parameters.
    ``initial_state`` (an earlier fit's ``state``, same layout) warm-starts the search:
    its chains, multipliers and random stream position replace the uniform start.
    """
    started = time.perf_counter()
    plan, objective, _ = model.program
    optimizer, optimizer_note = config.optimizer, None
    if optimizer == "newton" and not isinstance(objective, MomentObjective):
        # one multiplier per table cell: no Hessian to estimate; said in the diagnostics
        optimizer, optimizer_note = "adam", "table targets have no Newton step: adam is used"
    static = Static(
        model.layout.shape,
        optimizer,
        config.mcmc_steps_per_iteration,
        float(config.temperature),
        None if config.grad_clip is None else float(config.grad_clip),
        float(config.logit_clip),
        float(config.tolerance),
        model.devices,
    )
    seed = _seed(config.seed if rng is None else rng)
    state = init_state(static, plan, objective, config.num_chains, seed)
    if initial_state is not None:  # copies: run_chunk donates its input, the earlier fit keeps its own
        state = state._replace(**{k: getattr(initial_state, k).copy() for k in ("x", "params", "seed", "counter")})
    history = {k: [] for k in ("iteration", "max_error", "mean_error", "acceptance", "runtime", "averaging")}
    chunk = config.chunk_size
    sweeps_per_chunk = chunk * config.mcmc_steps_per_iteration
    n_search = math.ceil(config.num_iterations / chunk)
    n_average = math.ceil(config.averaging_iterations / chunk)
    lr = float(config.learning_rate)
    zeros = np.zeros(chunk, np.float32)
    converged = False
    done = 0
    chunk_times = []

    def advance(state, lrs, averaging, record=True):
        nonlocal done
        t0 = time.perf_counter()
        state, infos, total = run_chunk(static, plan, objective, state, np.asarray(lrs, np.float32), zeros + averaging)
        infos, total = jax.device_get((infos, total))
        seconds = time.perf_counter() - t0
        chunk_times.append(seconds)
        if record:
            _record(history, infos, done, seconds, averaging)
            done += chunk
            if progress is not None:
                metrics = {"max_error": float(infos.max_error[-1]), "mean_error": float(infos.mean_error[-1])}
                progress(done, (n_search + n_average) * chunk, metrics)
        return state, infos, total

    total = None
    at = checkpoint.Position()
    saver = checkpoint.FitCheckpoints.open(config, model, seed, refit=initial_state is not None)
    restored = saver.restore(state, zero_accumulators(static.shape)) if saver else None
    if restored is not None:  # resume where the checkpoint left off
        state, total, at, history, chunk_times = restored
        converged, done = at.converged, (at.search_chunks + at.average_chunks) * chunk
    for k in range(at.search_chunks, 0 if at.converged else n_search):
        state, infos, total = advance(state, zeros + lr, 0.0)
        # two consecutive converged iterations (one can pass by Monte Carlo luck); with
        # chunk_size=1 a chunk holds only one, and that one decides
        converged = bool(infos.converged[-1]) and bool(infos.converged[-2] if chunk > 1 else True)
        at = at._replace(search_chunks=k + 1, converged=converged)
        if saver:
            saver.save(state, total, at, history, chunk_times, end_of_phase=converged or k + 1 == n_search)
        if converged:
            break
    search_iterations = at.search_chunks * chunk
    for c in range(at.average_chunks, n_average):
        t = np.arange(c * chunk, (c + 1) * chunk)
        # A full Newton step makes each iterate an independent noisy estimate of the
        # optimum, so a constant step averages best; first-order steps decay.
        decay = np.ones(chunk) if optimizer == "newton" else 1.0 / np.sqrt(1.0 + t)
        state, _, total = advance(state, lr * decay, 1.0)
        at = at._replace(average_chunks=c + 1)
        if saver:
            saver.save(state, total, at, history, chunk_times, end_of_phase=c + 1 == n_average)
    if saver:
        saver.close()
    if n_average:
        state = state._replace(params=state.average)

    t0 = time.perf_counter()
    rare = rare_condition_factors(model, _host_table_moments(model, total), config.scope_threshold)
    scope_plan = build_scope_plan(model.graph, model.layout, rare) if rare else None
    can_polish = (config.polish_steps > 0 and isinstance(objective, MomentObjective)
                  and _dense_newton(objective, config.num_chains))
    estimate = _final_estimate(model, config, static, plan, objective, state, scope_plan, covariance=can_polish)
    polish_steps, final_sweeps_run = 0, estimate.total_sweeps
    if can_polish and (rare or _off_optimum(model, config, estimate)):
        estimate, polish_steps, final_sweeps_run = _polish(model, config, static, plan, objective, estimate, scope_plan)
    state, table_moments, marginal_sum = estimate.state, estimate.table_moments, estimate.marginal_sum
    sweeps, changed = estimate.sweeps, estimate.changed
    final_seconds = time.perf_counter() - t0
    certificate = certify(model, config, static, plan, objective, state)  # see .certificate
    search_converged, converged = converged, converged if certificate is None else certificate.passed

    graph = model.graph
    marginals = []
    for index, size in enumerate(graph.sizes):
        p = np.clip(marginal_sum[index, :size], 0.0, None)
        marginals.append(p / p.sum())
    answer = jax.device_get(state.params)
    tables = _host_tables(model, answer)
    params_out = np.asarray(answer, np.float64)[: len(model.targets.constraints)] if isinstance(objective, MomentObjective) else tables
    warm = chunk_times[1:] or chunk_times
    n_sites = max(model.plan.n_sites, 1)
    diagnostics = {
        "num_chains": config.num_chains,
        "devices": model.devices,
        "optimizer": optimizer,
        "optimizer_note": optimizer_note,
        "search_iterations": search_iterations,
        "averaging_iterations": n_average * chunk,
        "sweeps": len(chunk_times) * sweeps_per_chunk + final_sweeps_run,
        "final_sweeps": int(sweeps),
        "final_stderr": estimate.stderr,
        "first_chunk_s": chunk_times[0],
        "compile_time_s": max(chunk_times[0] - float(np.median(warm)), 0.0),
        "chunk_s": float(np.median(warm)),
        "final_s": final_seconds,
        "final_acceptance": changed / max(sweeps, 1.0) / n_sites,
        "scope_factors": len(rare),
        "polish_steps": polish_steps,
        "search_converged": search_converged,
        "certificate": None if certificate is None else certificate.as_dict(),
        "runtime_s": time.perf_counter() - started,
        "padded_shape": tuple(model.layout.shape),
        "colours": int(model.plan.colours.max()) + 1 if graph.n_vars else 0,
    }
    return SMMFit(
        graph=graph.with_tables(tables),
        params=params_out,
        table_moments=table_moments,
        marginals=marginals,
        converged=converged,
        n_iterations=done,
        history=history,
        diagnostics=diagnostics,
        state=state,
    )


#: What :func:`fit_smm` uses for an argument left out when no ``config`` is passed.
FIT_SMM_DEFAULTS = {"num_iterations": 200, "mcmc_steps_per_iteration": 2, "learning_rate": 0.5,
                    "optimizer": "sgd", "l2_regularization": 1e-3}


def fit_smm(
    graph: FactorGraph,
    targets,
    num_iterations: int | None = None,
    mcmc_steps_per_iteration: int | None = None,
    learning_rate: float | None = None,
    optimizer: str | None = None,
    l2_regularization: float | None = None,
    rng=None,
    *,
    config: SMMConfig | None = None,
    progress: Callable[[int, int, dict], None] | None = None,
):
    """Fit ``graph``'s factor tables to ``targets``; return ``(trained graph, history)``.

    ``targets`` is a :class:`~.targets.TableTargets` (one indicator per table cell) or
    a :class:`~.targets.MomentTargets`. The keyword arguments given override
    ``config``; those left out keep ``config``'s values, or without a ``config``
    :data:`FIT_SMM_DEFAULTS` (plain SGD, step 0.5). ``rng`` defaults to the config's
    ``seed``. The history also carries ``marginals`` (per variable), ``params``,
    ``table_moments`` and ``diagnostics``.
    """
    given = {"num_iterations": num_iterations, "mcmc_steps_per_iteration": mcmc_steps_per_iteration,
             "learning_rate": learning_rate, "optimizer": optimizer, "l2_regularization": l2_regularization}
    overrides = {name: value for name, value in given.items() if value is not None}
    config = attrs.evolve(config, **overrides) if config is not None else SMMConfig(**{**FIT_SMM_DEFAULTS, **overrides})
    model = SMMModel.build(graph, targets, config.num_chains, l2_regularization=config.l2_regularization,
                           devices=config.devices)
    fit = fit_model(model, config, progress=progress, rng=rng)
    history = dict(fit.history)
    history.update(
        marginals=fit.marginals,
        params=fit.params,
        table_moments=fit.table_moments,
        converged=fit.converged,
        diagnostics=fit.diagnostics,
    )
    return fit.graph, history
