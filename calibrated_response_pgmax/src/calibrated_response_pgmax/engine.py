"""Device side: pure JAX functions from multipliers to BP moments and dual updates.

The traced state is a small NamedTuple (:class:`DualState`); everything static
(index maps, PGMax's compiled message passing) is closed over by
:func:`build_chunk`, so a new lambda never rebuilds the graph or recompiles.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from calibrated_response_pgmax.graph import PgmaxGraph
from calibrated_response_pgmax.layout import FactorLayout


class DualState(NamedTuple):
    """What one dual update carries to the next."""

    lambdas: jnp.ndarray  # [K] float32 multipliers
    opt_state: Any  # optax state over lambdas
    ftov_msgs: jnp.ndarray  # [n_edge_states] warm-started factor-to-variable messages


class StepInfo(NamedTuple):
    """Per-update diagnostics (not carried)."""

    max_residual: jnp.ndarray  # [] max |projected dual gradient|
    bp_delta: jnp.ndarray  # [] max message change in the last BP sweep


class Statics(NamedTuple):
    """Constant arrays of one problem (device copies of host index maps)."""

    entry_constraint: jnp.ndarray  # [E] int
    entry_config: jnp.ndarray  # [E] int, layout order
    entry_value: jnp.ndarray  # [E] float
    layout_of_flat: jnp.ndarray  # [C] int
    flat_of_layout: jnp.ndarray  # [C] int
    factor_of_flat: jnp.ndarray  # [C] int
    config_of_edge_row: jnp.ndarray  # [R] int
    edge_state_of_row: jnp.ndarray  # [R] int
    var_state_of_edge_state: jnp.ndarray  # [n_edge_states] int
    evidence: jnp.ndarray  # [n_var_states] float
    targets: jnp.ndarray  # [K]
    s2: jnp.ndarray  # [K]
    lower: jnp.ndarray  # [K] -inf or 0
    upper: jnp.ndarray  # [K] 0 or +inf


def make_statics(layout: FactorLayout, graph: PgmaxGraph, targets, s2, bounds) -> Statics:
    """Device constants for one problem; ``bounds`` as from ``ConstraintSet.lambda_bounds``."""
    lower = np.array([-np.inf if lo is None else lo for lo, _ in bounds], dtype=np.float32)
    upper = np.array([np.inf if hi is None else hi for _, hi in bounds], dtype=np.float32)
    as_int = lambda a: jnp.asarray(np.asarray(a, dtype=np.int32))  # noqa: E731
    return Statics(
        entry_constraint=as_int(layout.entry_constraint),
        entry_config=as_int(layout.entry_config),
        entry_value=jnp.asarray(layout.entry_value, dtype=jnp.float32),
        layout_of_flat=as_int(graph.layout_of_flat),
        flat_of_layout=as_int(graph.flat_of_layout),
        factor_of_flat=as_int(graph.factor_of_flat),
        config_of_edge_row=as_int(graph.config_of_edge_row),
        edge_state_of_row=as_int(graph.edge_state_of_row),
        var_state_of_edge_state=as_int(graph.var_state_of_edge_state),
        evidence=jnp.asarray(graph.initial_arrays.evidence, dtype=jnp.float32),
        targets=jnp.asarray(targets, dtype=jnp.float32),
        s2=jnp.asarray(s2, dtype=jnp.float32),
        lower=jnp.asarray(lower),
        upper=jnp.asarray(upper),
    )


def make_optimizer(config) -> optax.GradientTransformation:
    """Adam on the dual with an exponentially decaying step size (see :class:`PgmaxConfig`)."""
    schedule = optax.exponential_decay(
        config.learning_rate,
        transition_steps=config.learning_rate_half_life,
        decay_rate=0.5,
        end_value=min(config.min_learning_rate, config.learning_rate),
    )
    return optax.adam(schedule, b2=config.adam_b2)


def log_potentials(lambdas, statics: Statics, n_configs: int):
    """PGMax flat log potentials ``theta_f = sum_k lambda_k G_k`` for multipliers ``lambdas``."""
    contributions = lambdas[statics.entry_constraint] * statics.entry_value
    theta = jnp.zeros(n_configs, dtype=contributions.dtype).at[statics.entry_config].add(contributions)
    return theta[statics.layout_of_flat]


def factor_beliefs(theta_flat, ftov_msgs, statics: Statics, n_factors: int):
    """Bethe factor beliefs in layout order: potential times incoming variable-to-factor messages."""
    var_sums = statics.evidence.at[statics.var_state_of_edge_state].add(ftov_msgs)
    vtof_msgs = var_sums[statics.var_state_of_edge_state] - ftov_msgs
    incoming = jax.ops.segment_sum(
        vtof_msgs[statics.edge_state_of_row], statics.config_of_edge_row, num_segments=theta_flat.shape[0]
    )
    log_belief = theta_flat + incoming
    peak = jax.ops.segment_max(log_belief, statics.factor_of_flat, num_segments=n_factors)
    weights = jnp.exp(log_belief - peak[statics.factor_of_flat])
    total = jax.ops.segment_sum(weights, statics.factor_of_flat, num_segments=n_factors)
    return (weights / total[statics.factor_of_flat])[statics.flat_of_layout]


def feature_means(beliefs, statics: Statics):
    """``E_b[g_k]`` for every constraint from layout-order factor beliefs."""
    weighted = beliefs[statics.entry_config] * statics.entry_value
    return jax.ops.segment_sum(weighted, statics.entry_constraint, num_segments=statics.targets.shape[0])


def projected_gradient(grad, lambdas, statics: Statics):
    """Zero the gradient components that the sign bounds block."""
    blocked = ((lambdas <= statics.lower) & (grad > 0)) | ((lambdas >= statics.upper) & (grad < 0))
    return jnp.where(blocked, 0.0, grad)


def build_bp_sweep(graph: PgmaxGraph, statics: Statics, n_configs: int, num_iters: int, damping: float):
    """``sweep(lambdas, ftov_msgs) -> (theta_flat, ftov_msgs, last_delta)``: sum-product BP at temperature 1."""
    run_with_diffs = graph.inferer.run_with_diffs
    arrays_type = type(graph.initial_arrays)

    def sweep(lambdas, ftov_msgs):
        theta_flat = log_potentials(lambdas, statics, n_configs)
        arrays = arrays_type(log_potentials=theta_flat, ftov_msgs=ftov_msgs, evidence=statics.evidence)
        arrays, deltas = run_with_diffs(arrays, num_iters=num_iters, damping=damping, temperature=1.0)
        return theta_flat, arrays.ftov_msgs, deltas[-1]

    return sweep


def build_chunk(graph: PgmaxGraph, statics: Statics, layout: FactorLayout, optimizer, config):
    """Jitted ``chunk(state) -> (state, StepInfo[chunk_size])``: ``chunk_size`` dual updates."""
    sweep = build_bp_sweep(graph, statics, layout.n_configs, config.bp_iterations, config.damping)

    def step(state: DualState, _):
        theta_flat, msgs, delta = sweep(state.lambdas, state.ftov_msgs)
        beliefs = factor_beliefs(theta_flat, msgs, statics, layout.n_factors)
        grad = feature_means(beliefs, statics) - statics.targets + statics.s2 * state.lambdas
        updates, opt_state = optimizer.update(grad, state.opt_state, state.lambdas)
        lambdas = jnp.clip(optax.apply_updates(state.lambdas, updates), statics.lower, statics.upper)
        residual = jnp.max(jnp.abs(projected_gradient(grad, state.lambdas, statics)), initial=0.0)
        return DualState(lambdas, opt_state, msgs), StepInfo(residual, delta)

    @jax.jit
    def chunk(state: DualState):
        return jax.lax.scan(step, state, None, length=config.chunk_size)

    return chunk


def build_final(graph: PgmaxGraph, statics: Statics, layout: FactorLayout, config):
    """Jitted ``final(lambdas, msgs) -> (factor beliefs, variable log-beliefs, msgs, delta)`` after a long BP run."""
    sweep = build_bp_sweep(graph, statics, layout.n_configs, config.final_bp_iterations, config.damping)

    @jax.jit
    def final(lambdas, ftov_msgs):
        theta_flat, msgs, delta = sweep(lambdas, ftov_msgs)
        beliefs = factor_beliefs(theta_flat, msgs, statics, layout.n_factors)
        var_log_beliefs = statics.evidence.at[statics.var_state_of_edge_state].add(msgs)
        return beliefs, var_log_beliefs, msgs, delta

    return final
