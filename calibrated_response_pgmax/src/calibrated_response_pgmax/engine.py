"""Device side: pure JAX functions from multipliers to BP beliefs, moments and the Bethe dual.

The traced inputs are the multipliers and the warm-started BP messages;
everything static (index maps, PGMax's message passing) is closed over by
:func:`build_evaluate`, so a new lambda never rebuilds the graph or recompiles.
Everything runs in float64 (the caller wraps it in ``jax.enable_x64``) so the
dual value is precise enough for a quasi-Newton line search.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from calibrated_response_pgmax.graph import PgmaxGraph
from calibrated_response_pgmax.layout import FactorLayout


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
    var_of_var_state: jnp.ndarray  # [n_var_states] int
    degrees: jnp.ndarray  # [n_vars] float, number of factors on each variable
    targets: jnp.ndarray  # [K]
    s2: jnp.ndarray  # [K]


def make_statics(layout: FactorLayout, graph: PgmaxGraph, problem) -> Statics:
    """Device constants for one ConstraintSet (float64: call under ``jax.enable_x64``)."""
    n_states = problem.n_states
    degrees = np.zeros(len(n_states))
    for scope in layout.scopes:
        degrees[list(scope)] += 1
    as_int = lambda a: jnp.asarray(np.asarray(a, dtype=np.int32))  # noqa: E731
    return Statics(
        entry_constraint=as_int(layout.entry_constraint),
        entry_config=as_int(layout.entry_config),
        entry_value=jnp.asarray(layout.entry_value),
        layout_of_flat=as_int(graph.layout_of_flat),
        flat_of_layout=as_int(graph.flat_of_layout),
        factor_of_flat=as_int(graph.factor_of_flat),
        config_of_edge_row=as_int(graph.config_of_edge_row),
        edge_state_of_row=as_int(graph.edge_state_of_row),
        var_state_of_edge_state=as_int(graph.var_state_of_edge_state),
        evidence=jnp.asarray(np.asarray(graph.initial_arrays.evidence), dtype=jnp.float64),
        var_of_var_state=as_int(np.repeat(np.arange(len(n_states)), n_states)),
        degrees=jnp.asarray(degrees),
        targets=jnp.asarray(problem.targets),
        s2=jnp.asarray(problem.s2),
    )


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


def bethe_log_partition(theta, beliefs, var_log_beliefs, statics: Statics):
    """Bethe estimate of ``log Z`` (minus the Bethe free energy) from layout-order beliefs.

    ``sum_f E_bf[theta_f] + H(b_f) - sum_i (d_i - 1) H(b_i)``: exact on trees; its
    gradient in lambda at a BP fixed point is the belief moments ``E_b[g]``.
    """
    log_b = jnp.log(jnp.where(beliefs > 0, beliefs, 1.0))
    factor_terms = jnp.sum(beliefs * (theta - log_b))
    var_peak = jax.ops.segment_max(var_log_beliefs, statics.var_of_var_state, num_segments=statics.degrees.shape[0])
    shifted = jnp.exp(var_log_beliefs - var_peak[statics.var_of_var_state])
    totals = jax.ops.segment_sum(shifted, statics.var_of_var_state, num_segments=statics.degrees.shape[0])
    var_b = shifted / totals[statics.var_of_var_state]
    var_neg_entropy = jax.ops.segment_sum(
        var_b * jnp.log(jnp.where(var_b > 0, var_b, 1.0)), statics.var_of_var_state,
        num_segments=statics.degrees.shape[0],
    )
    return factor_terms + jnp.sum((statics.degrees - 1) * var_neg_entropy)


def _beliefs_after_sweep(sweep, statics: Statics, layout: FactorLayout, lambdas, ftov_msgs):
    """Run the BP sweeps; return (factor log-potentials, factor beliefs, variable log-beliefs, msgs, delta)."""
    theta_flat, msgs, delta = sweep(lambdas, ftov_msgs)
    beliefs = factor_beliefs(theta_flat, msgs, statics, layout.n_factors)
    var_log_beliefs = statics.evidence.at[statics.var_state_of_edge_state].add(msgs)
    return theta_flat, beliefs, var_log_beliefs, msgs, delta


def build_evaluate(graph: PgmaxGraph, statics: Statics, layout: FactorLayout, config):
    """Jitted ``evaluate(lambdas, msgs) -> (dual, grad, msgs, delta)``: ``bp_iterations`` warm-started sweeps.

    ``dual`` is the Bethe dual ``log Z_B - lambda.c + 1/2 sum s^2 lambda^2`` and
    ``grad`` its gradient ``E_b[g] - c + s^2 lambda``; ``delta`` is the largest
    message change of the last sweep (0 at a BP fixed point).
    """
    sweep = build_bp_sweep(graph, statics, layout.n_configs, config.bp_iterations, config.damping)

    @jax.jit
    def evaluate(lambdas, ftov_msgs):
        theta_flat, beliefs, var_log_beliefs, msgs, delta = _beliefs_after_sweep(
            sweep, statics, layout, lambdas, ftov_msgs)
        log_z = bethe_log_partition(theta_flat[statics.flat_of_layout], beliefs, var_log_beliefs, statics)
        penalty = 0.5 * jnp.sum(statics.s2 * lambdas**2)
        dual = log_z - jnp.dot(lambdas, statics.targets) + penalty
        grad = feature_means(beliefs, statics) - statics.targets + statics.s2 * lambdas
        return dual, grad, msgs, delta

    return evaluate


def build_final(graph: PgmaxGraph, statics: Statics, layout: FactorLayout, config):
    """Jitted ``final(lambdas, msgs) -> (factor beliefs, variable log-beliefs, msgs, delta)`` after a long BP run."""
    sweep = build_bp_sweep(graph, statics, layout.n_configs, config.final_bp_iterations, config.damping)

    @jax.jit
    def final(lambdas, ftov_msgs):
        _, beliefs, var_log_beliefs, msgs, delta = _beliefs_after_sweep(sweep, statics, layout, lambdas, ftov_msgs)
        return beliefs, var_log_beliefs, msgs, delta

    return final
