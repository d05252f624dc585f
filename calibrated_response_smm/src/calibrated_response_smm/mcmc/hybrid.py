"""Mixed categorical / bounded-continuous states.

A continuous variable's factors only see its bin, so the chains run on bins (exact
Gibbs on the discretised model) and a continuous value is drawn uniformly inside the
current bin whenever a state is read out: ``state["cont"]`` holds real values.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..graph import FactorGraph
from .stream import site_uniforms


class ContinuousMap(NamedTuple):
    """Which chain rows are continuous, and their bin geometry (device pytree)."""

    cat_rows: jax.Array  # i32[n_cat]
    cont_rows: jax.Array  # i32[n_cont]
    low: jax.Array  # f32[n_cont]
    width: jax.Array  # f32[n_cont]


def continuous_map(graph: FactorGraph) -> ContinuousMap:
    cat = [i for i, v in enumerate(graph.variables) if v.kind == "categorical"]
    cont = [i for i, v in enumerate(graph.variables) if v.kind == "bounded_continuous"]
    low = [graph.variables[i].low for i in cont]
    width = [(graph.variables[i].high - graph.variables[i].low) / graph.variables[i].num_bins for i in cont]
    return ContinuousMap(
        jnp.asarray(np.array(cat, np.int32)),
        jnp.asarray(np.array(cont, np.int32)),
        jnp.asarray(np.array(low, np.float32)),
        jnp.asarray(np.array(width, np.float32)),
    )


def read_states(cmap: ContinuousMap, x, words):
    """Chain-major ``{"cat": int32[C, n_cat], "cont": float32[C, n_cont]}`` from bins ``x``."""
    bins = x[cmap.cont_rows]  # [n_cont, C]
    u = site_uniforms(words, jnp.uint32(0), bins.shape)
    values = cmap.low[:, None] + (bins.astype(jnp.float32) + u) * cmap.width[:, None]
    return {"cat": x[cmap.cat_rows].T, "cont": values.T}
