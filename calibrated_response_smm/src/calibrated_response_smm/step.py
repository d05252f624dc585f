"""One training iteration: sweeps at the current tables, then one dual step (device side).

An iteration advances the persistent chains by a few chromatic Gibbs sweeps at the
current factor tables, reads the Rao-Blackwellised table moments the sweeps
accumulated, and steps on the dual ``log Z - lambda.c + 1/2 s^2 lambda^2`` along
``c - E[g] - s^2 lambda`` with one of the optax transformations of
:mod:`.dual_step`. The Newton step's curvature is the chains' feature covariance:
in full (``dense``), localised to constraints that share a variable (``local``, see
:mod:`.curvature`) or the variances alone (``diagonal``); :func:`curvature_mode`
picks it from the problem's size.

Iterations run in ``lax.scan`` chunks (:func:`run_chunk`), whose state is donated.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .curvature import LocalCovariance, Pattern, local_covariance
from .diagnostics import max_moment_error, mean_moment_error
from .dual_step import ChainStatistics, PolyakState, dual_step, held_at_sign_bound, polyak_init, polyak_update
from .features import LayoutShape, moment_rows_to_tables
from .mcmc.gibbs import GibbsKernel, GibbsState, build_kernel
from .mcmc.plan import SweepPlan
from .mcmc.sweep import SWEEP_COMPILER_OPTIONS, make_rows, move_rate, zero_accumulators
from .targets import MomentObjective, ascent, chain_values, init_params, params_to_tables, project

# The Newton step uses the chains' full feature covariance only for at most this many
# multipliers, and at least CHAINS_PER_MULTIPLIER chains per multiplier; beyond, the
# covariance localised to constraints that share a variable. The full covariance costs
# K^2 C per iteration and its solve K^3, and from fewer chains than multipliers it is
# singular: on a synthetic 1,000-variable problem (2,499 constraints, 2,048 chains)
# the dense step did not converge in 200 iterations (570 s).
DENSE_NEWTON_MAX = 1024
CHAINS_PER_MULTIPLIER = 4
CURVATURES = ("dense", "local", "diagonal")


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
    curvature: str = "diagonal"  # the Newton step's covariance: one of CURVATURES


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
    acceptance: jax.Array


def curvature_mode(n_constraints: int, num_chains: int, has_pattern: bool = True) -> str:
    """``dense`` for few constraints with enough chains each, else ``local`` (or ``diagonal`` without a pattern)."""
    if n_constraints <= DENSE_NEWTON_MAX and n_constraints * CHAINS_PER_MULTIPLIER <= num_chains:
        return "dense"
    return "local" if has_pattern else "diagonal"


def factor_tables(static: Static, objective, params):
    tables = params_to_tables(objective, params, static.shape)
    return tuple(jnp.clip(t, -static.logit_clip, static.logit_clip) for t in tables)


def kernel(static: Static, plan: SweepPlan, n_sweeps: int) -> GibbsKernel:
    """The Gibbs kernel of ``n_sweeps`` sweeps per step at ``static``'s settings."""
    return build_kernel(plan, static.shape, n_sweeps, temperature=static.temperature, devices=static.devices)


def chain_curvature(objective: MomentObjective, values, mode: str, pattern: Pattern | None = None):
    """The chains' feature covariance from per-chain values ``[K, C]``: ``[K, K]``, local or ``[K]``."""
    if mode == "local" and pattern is not None:
        return local_covariance(pattern, values)
    mean = values.mean(axis=1)
    if mode == "dense":
        return values @ values.T / values.shape[1] - jnp.outer(mean, mean)
    return jnp.maximum(jnp.mean(values * values, axis=1) - mean * mean, 0.0)


def variances_of(curvature) -> jax.Array:
    if isinstance(curvature, LocalCovariance):
        return curvature.variances
    return jnp.diag(curvature) if curvature.ndim == 2 else curvature


def projected(objective, params, grad):
    """Residuals that count toward convergence (none where a sign bound is rightly active)."""
    if isinstance(objective, MomentObjective):
        return jnp.where(held_at_sign_bound(objective, params, grad), 0.0, grad)
    return jnp.concatenate([(g * m).reshape(-1) for g, m in zip(grad, objective.mask)])


def iteration(static: Static, plan: SweepPlan, objective, pattern, state: TrainState, lr, averaging):
    """Sweeps at the current tables, then one dual step (pure); also returns the sweeps' sums."""
    rows = make_rows(plan, static.shape, factor_tables(static, objective, state.params))
    gibbs, acc = kernel(static, plan, static.sweeps).step(GibbsState(state.x, state.seed, state.counter), rows)
    x = gibbs.x
    moments = moment_rows_to_tables(static.shape, acc.moments / acc.sweeps)
    grad = ascent(objective, state.params, moments)
    stepper = dual_step(static.optimizer, objective, static.grad_clip)
    extra, values = {}, None
    if isinstance(objective, MomentObjective):
        values = chain_values(objective, x, static.shape.n_states)
        curvature = chain_curvature(objective, values, static.curvature if stepper.uses_chains else "diagonal", pattern)
        variance = variances_of(curvature)
        if stepper.uses_chains:
            extra["chains"] = ChainStatistics(values, curvature)
    else:
        flat = jnp.concatenate([m.reshape(-1) for m in moments])
        variance = flat * (1.0 - flat)
    step, opt_state = stepper.transformation.update(grad, state.opt_state, state.params, **extra)
    params = project(objective, jax.tree.map(lambda p, s: p + lr * s, state.params, step))
    average, n_average = polyak_update(PolyakState(state.average, state.n_average), params, averaging)

    residual = projected(objective, state.params, grad)
    stderr = jnp.sqrt(jnp.maximum(variance, 0.0) / x.shape[1])
    info = IterationInfo(
        max_error=max_moment_error(residual),
        mean_error=mean_moment_error(residual),
        acceptance=move_rate(plan, acc),
    )
    new_state = TrainState(x, params, opt_state, average, n_average, state.seed, state.counter + static.sweeps)
    return new_state, info, acc, Measured(residual, stderr, values, variance)


class Measured(NamedTuple):
    """What one iteration measured, for the chunk's verdict and its autocorrelation time."""

    residual: jax.Array  # f32[K']: the residuals that count toward convergence
    stderr: jax.Array  # f32[K']: their Monte Carlo standard errors
    values: jax.Array | None  # f32[K, C]: every chain's feature values (moment targets)
    variance: jax.Array  # f32[K'] (moment targets: [K]): the features' variance over chains


class ChunkResult(NamedTuple):
    """What :func:`run_chunk` returns (device pytree)."""

    state: TrainState
    infos: IterationInfo  # one entry per iteration
    total: Any  # Rao-Blackwellised sums of every sweep in the chunk
    converged: jax.Array  # bool[]: the chunk's verdict (see run_chunk)
    autocorrelation: jax.Array  # f32[]: integrated autocorrelation time in sweeps (see autocorrelation_time)


def autocorrelation_time(value_sums, variance_sums, n_iterations: int, sweeps: int):
    """Largest integrated autocorrelation time, in sweeps, of any feature over a chunk (0: not measured).

    A chain's average of ``n`` readings (one per iteration, ``sweeps`` apart) varies
    over chains by ``tau_k / n`` times a single reading's variance, where ``tau_k`` is
    feature ``k``'s integrated autocorrelation time in readings: ``tau_k = n
    Var_chains(mean_k) / mean Var_chains(g_k)``. Features that do not vary (below
    1e-8) are left out. A reading every ``sweeps`` sweeps counts ``sweeps`` sweeps
    per reading, so chains that decorrelate within one sweep read as ``sweeps``
    (an upper bound). The multipliers' changes over the chunk move every chain
    alike and do not enter the spread over chains. The estimate cannot exceed about
    ``n``: a value near it means the chains did not decorrelate within the chunk.
    """
    if value_sums is None:
        return jnp.zeros((), jnp.float32)
    means = value_sums / n_iterations
    between = jnp.var(means, axis=1)
    within = variance_sums / n_iterations
    varies = within > 1e-8
    tau = jnp.where(varies, n_iterations * between / jnp.where(varies, within, 1.0), 0.0)
    return jnp.max(tau, initial=0.0) * sweeps


def _measured_zeros(objective, state: TrainState):
    """Zero sums of :class:`Measured`: ``(residual, stderr)`` and ``(values or None, variance)``."""
    if isinstance(objective, MomentObjective):
        k = state.params.shape[0]
        zero = jnp.zeros(k, jnp.float32)
        return (zero, zero), (jnp.zeros((k, state.x.shape[1]), jnp.float32), zero)
    zero = jnp.zeros(sum(m.size for m in objective.mask), jnp.float32)
    return (zero, zero), (None, zero)


def within_tolerance(static: Static, residual, stderr):
    """Every residual within ``tolerance`` plus three of its Monte Carlo standard errors."""
    return jnp.all(jnp.abs(residual) <= static.tolerance + 3.0 * stderr)


@functools.partial(jax.jit, static_argnums=(0, 3))
def init_state(static: Static, plan: SweepPlan, objective, num_chains: int, seed):
    """Uniform chains (exactly the zero-parameter model) and zero parameters."""
    params = init_params(objective)
    opt_state = dual_step(static.optimizer, objective, static.grad_clip).transformation.init(params)
    zeros = polyak_init(params).average
    x = kernel(static, plan, static.sweeps).init(seed, num_chains).x
    return TrainState(x, params, opt_state, zeros, jnp.zeros((), jnp.float32), seed, jnp.zeros((), jnp.uint32))


@functools.partial(jax.jit, static_argnums=0, donate_argnums=4, compiler_options=SWEEP_COMPILER_OPTIONS)
def run_chunk(static: Static, plan: SweepPlan, objective, pattern, state: TrainState, lrs, averaging):
    """``len(lrs)`` iterations under ``lax.scan``.

    Returns the new state, per-iteration :class:`IterationInfo`, the
    Rao-Blackwellised sums of every sweep in the chunk, and the chunk's verdict:
    whether the residuals averaged over its last half of iterations are all within
    tolerance (:func:`within_tolerance`, with one iteration's standard errors). A
    Newton step leaves each iterate off the optimum by the last iteration's noise, so
    one iterate's residuals carry about twice the noise variance and, among thousands
    of constraints, some pass ``3`` standard errors by chance nearly every iteration;
    along the iterations that noise cancels (each step undoes the last
    one's error) while a residual that persists does not. ``pattern`` is the local
    curvature's :class:`~.curvature.Pattern` (None unless ``static.curvature`` is
    ``local``). ``state`` is donated: the new state takes over its buffers (at 30
    million multipliers, 0.4 GB less memory and 10% less time), so pass the returned
    state on and do not read the old one.
    """

    def body(carry, inputs):
        state, total, late, summed = carry
        *inputs, weight = inputs
        state, info, acc, measured = iteration(static, plan, objective, pattern, state, *inputs)
        total = jax.tree.map(jnp.add, total, acc)
        late = jax.tree.map(lambda s, m: s + weight * m, late, (measured.residual, measured.stderr))
        summed = jax.tree.map(jnp.add, summed, (measured.values, measured.variance))
        return (state, total, late, summed), info

    n = lrs.shape[0]
    weights = jnp.where(jnp.arange(n) >= n // 2, 1.0 / (n - n // 2), 0.0)
    carry = (state, zero_accumulators(static.shape), *_measured_zeros(objective, state))
    (state, total, (residual, stderr), (value_sums, variance_sums)), infos = jax.lax.scan(
        body, carry, (lrs, averaging, weights))
    return ChunkResult(state, infos, total, within_tolerance(static, residual, stderr),
                       autocorrelation_time(value_sums, variance_sums, n, static.sweeps))
