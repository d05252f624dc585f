"""Energies of single states: ``E(x) = -sum_f theta_f[x_f]`` (so ``p(x) ∝ exp(-E(x))``).

States are the seed's pytree ``{"cat": int32[n_cat], "cont": float32[n_cont]}``:
categorical variables in graph order in ``cat``, continuous ones in ``cont`` (real
values, discretised to their bin before any table lookup).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .graph import FactorGraph, SMMVariable


def _positions(graph: FactorGraph) -> list[tuple[str, int]]:
    """Where each variable sits in the state pytree: ("cat" | "cont", index)."""
    counters = {"cat": 0, "cont": 0}
    out = []
    for variable in graph.variables:
        key = "cat" if variable.kind == "categorical" else "cont"
        out.append((key, counters[key]))
        counters[key] += 1
    return out


def value_to_bin(variable: SMMVariable, value):
    """The state index of a value: itself for a categorical, its bin for a continuous variable."""
    if variable.kind == "categorical":
        return jnp.asarray(value, jnp.int32)
    width = (variable.high - variable.low) / variable.num_bins
    return jnp.clip(jnp.floor((value - variable.low) / width), 0, variable.num_bins - 1).astype(jnp.int32)


def state_to_bins(graph: FactorGraph, state) -> jnp.ndarray:
    """Bin index per variable, ``int32[n_vars]``."""
    return jnp.stack(
        [value_to_bin(v, state[key][i]) for v, (key, i) in zip(graph.variables, _positions(graph))]
    ) if graph.n_vars else jnp.zeros((0,), jnp.int32)


def _factor_value(factor, bins) -> jnp.ndarray:
    table = jnp.asarray(np.asarray(factor.parameters), jnp.float32)
    return table[tuple(bins[v] for v in factor.var_ids)]


def energy(graph: FactorGraph, state) -> jnp.ndarray:
    """``-sum_f theta_f[x_f]`` of one state."""
    bins = state_to_bins(graph, state)
    return -sum((_factor_value(f, bins) for f in graph.factors), jnp.zeros((), jnp.float32))


def local_energy_delta(graph: FactorGraph, state, var_id: int, proposed_value) -> jnp.ndarray:
    """``E(x with x_var = proposed) - E(x)``, recomputing only the factors that touch ``var_id``."""
    bins = state_to_bins(graph, state)
    proposed = bins.at[var_id].set(value_to_bin(graph.variables[var_id], proposed_value))
    delta = jnp.zeros((), jnp.float32)
    for fid in graph.var_to_factors[var_id]:
        factor = graph.factors[fid]
        delta = delta - (_factor_value(factor, proposed) - _factor_value(factor, bins))
    return delta
