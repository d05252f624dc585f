"""Scope-wise Rao-Blackwellised table moments.

The sweep's Rao-Blackwellised moments average the conditional of one pivot variable
per factor; the other scope variables enter as sampled indicators. For an event
that is rare under the model (the condition of a conditional estimate with
``P(C) ~ 1e-3``) those indicators are almost always zero, and a ratio such as
``E[w_AC] / E[w_C]`` of two such means is noisy.

Here each chain contributes, for every factor ``f``, the exact conditional of the
whole scope given the chain's other variables,

    q_f(x_S | x_rest) ∝ exp(sum_{g touching S} theta_g(x_{S ∩ g}, x_{g \\ S})),

an enumeration over the scope's cells only (no joint over all variables). Its
average over chains is an unbiased estimate of the scope's table moment whose
variance comes only from how the rest of the chain moves ``q_f``, so a rare
cell's probability is estimated to a small relative error.

Layout: the cells of every factor are concatenated on one axis; each cell lists
the entries of the flat table vector (all bucket tables, padded to ``S`` states
per axis) that its log-weight sums: constant indices for the factors inside the
scope (the same for every chain), and for the factors reaching outside it a
constant index plus at most two ``stride * x[w]`` terms for the outside variables. Sizes are padded to
powers of two so that problems of similar size share compiled code.
"""

from __future__ import annotations

from typing import NamedTuple

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from .features import TableLayout, bucket

MIN_CELLS = 256
MIN_TERMS = 4


class ScopePlan(NamedTuple):
    """Index maps of the scope estimator (device pytree)."""

    segment: jax.Array  # i32[N]: factor slot of each cell (padding: the last slot)
    inner: jax.Array  # i32[N, T_in]: flat table index of each term inside the scope (padding: the zero entry)
    const: jax.Array  # i32[N, T]: flat table index of each term at x_outside = 0 (padding: the zero entry)
    w1: jax.Array  # i32[N, T]: first outside variable of the term (dummy row: state 0)
    m1: jax.Array  # i32[N, T]: its stride in the flat table
    w2: jax.Array  # i32[N, T]
    m2: jax.Array  # i32[N, T]


@attrs.frozen(eq=False)
class HostScopePlan:
    """The estimator's arrays, and where each chosen factor's cells sit on the cell axis."""

    arrays: dict
    factor_ids: tuple[int, ...]
    offsets: tuple[int, ...]  # first cell of each chosen factor
    shapes: tuple[tuple[int, ...], ...]

    def device(self) -> ScopePlan:
        return ScopePlan(**{k: jnp.asarray(v) for k, v in self.arrays.items()})

    n_segments: int  # factor slots, padded (the last one collects padding cells)

    def tables(self, cell_log_means) -> dict[int, np.ndarray]:
        """Per chosen factor id: its table moment (float64) from the per-cell log means."""
        cell_means = np.exp(np.asarray(cell_log_means, np.float64))
        return {fid: cells.reshape(s) for (fid, cells), s in zip(self.cells(cell_means).items(), self.shapes)}

    def cells(self, cell_values) -> dict[int, np.ndarray]:
        """Per chosen factor id: its rows of ``cell_values`` (``[N, ...]``), one per table cell."""
        return {
            fid: cell_values[o : o + int(np.prod(s))] for fid, o, s in zip(self.factor_ids, self.offsets, self.shapes)
        }


def _flat_offsets(layout: TableLayout) -> tuple[list[int], int]:
    """Start of each arity bucket in the flat table vector, and the vector's length (plus a zero entry)."""
    S = layout.n_states
    starts, total = [], 0
    for b in layout.buckets:
        starts.append(total)
        total += b.size * S**b.arity
    return starts, total


def flat_tables(theta) -> jax.Array:
    """All bucket tables as one vector, with a trailing zero entry for padding terms."""
    return jnp.concatenate([t.reshape(-1) for t in theta] + [jnp.zeros((1,), theta[0].dtype)])


def _touching(layout: TableLayout, scope: set[int]):
    """(bucket index, position, factor scope) of every laid-out factor sharing a variable with ``scope``."""
    out = []
    for bi, b in enumerate(layout.buckets):
        for pos in range(b.size):
            if b.factor_ids[pos] < 0:
                continue
            vars_g = [int(v) for v in b.scopes[pos]]
            if scope & set(vars_g):
                out.append((bi, pos, vars_g))
    return out


def build_scope_plan(graph, layout: TableLayout, factor_ids, pad: bool = True) -> HostScopePlan:
    """The estimator for the scopes of ``factor_ids`` (graph factor ids)."""
    grow = bucket if pad else (lambda n, minimum=1: max(int(n), 1))
    S, dummy = layout.n_states, layout.dummy
    starts, total = _flat_offsets(layout)
    zero_entry = total
    rows = []  # per cell: (segment, [inside-scope index, ...], [(const, w1, m1, w2, m2), ...])
    offsets, shapes = [], []
    for slot, fid in enumerate(factor_ids):
        scope = list(graph.factors[fid].var_ids)
        shape = tuple(graph.sizes[v] for v in scope)
        offsets.append(len(rows))
        shapes.append(shape)
        terms = _touching(layout, set(scope))
        for cell in np.ndindex(*shape):
            value = dict(zip(scope, cell))
            inside, cell_terms = [], []
            for bi, pos, vars_g in terms:
                arity = len(vars_g)
                const = starts[bi] + pos * S**arity
                outside = []
                for j, v in enumerate(vars_g):
                    stride = S ** (arity - 1 - j)
                    if v in value:
                        const += stride * value[v]
                    else:
                        outside.append((v, stride))
                if not outside:  # the same for every chain
                    inside.append(const)
                    continue
                outside += [(dummy, 0)] * (2 - len(outside))
                cell_terms.append((const, outside[0][0], outside[0][1], outside[1][0], outside[1][1]))
            rows.append((slot, inside, cell_terms))
    n_cells = grow(len(rows), MIN_CELLS)
    n_inner = grow(max([len(t) for _, t, _ in rows] + [1]), MIN_TERMS)
    n_terms = grow(max([len(t) for _, _, t in rows] + [1]), MIN_TERMS)
    n_slots = len(factor_ids)
    segment = np.full(n_cells, n_slots, np.int32)
    inner = np.full((n_cells, n_inner), zero_entry, np.int32)
    const = np.full((n_cells, n_terms), zero_entry, np.int32)
    w1 = np.full((n_cells, n_terms), dummy, np.int32)
    w2 = np.full((n_cells, n_terms), dummy, np.int32)
    m1 = np.zeros((n_cells, n_terms), np.int32)
    m2 = np.zeros((n_cells, n_terms), np.int32)
    for i, (slot, inside, cell_terms) in enumerate(rows):
        segment[i] = slot
        inner[i, : len(inside)] = inside
        for t, entry in enumerate(cell_terms):
            const[i, t], w1[i, t], m1[i, t], w2[i, t], m2[i, t] = entry
    arrays = dict(segment=segment, inner=inner, const=const, w1=w1, m1=m1, w2=w2, m2=m2)
    n_segments = grow(n_slots + 1, 8)
    return HostScopePlan(arrays, tuple(int(f) for f in factor_ids), tuple(offsets), tuple(shapes), n_segments)


def cell_logits(plan: ScopePlan, flat, x) -> jax.Array:
    """Unnormalised log conditional of every cell given each chain's outside variables, ``[N, C]``."""
    index = plan.const[..., None] + plan.m1[..., None] * x[plan.w1] + plan.m2[..., None] * x[plan.w2]  # [N, T, C]
    return jnp.sum(flat[plan.inner], axis=1)[:, None] + jnp.sum(flat[index], axis=1)


def cell_log_probabilities(plan: ScopePlan, flat, x, n_segments: int) -> jax.Array:
    """Per chain, the log probability of each cell under its factor's scope conditional, ``[N, C]``.

    Kept in logs: a condition the multipliers make nearly impossible (probability
    1e-40, far below float32's range) still has a finite ratio ``P(A and C) / P(C)``.
    """
    logits = cell_logits(plan, flat, x)
    top = jax.ops.segment_max(logits, plan.segment, num_segments=n_segments)
    shifted = logits - top[plan.segment]
    total = jax.ops.segment_sum(jnp.exp(shifted), plan.segment, num_segments=n_segments)
    return shifted - jnp.log(total)[plan.segment]


def scope_cell_log_means(plan: ScopePlan, flat, x, n_segments: int) -> jax.Array:
    """Log of the chain average of each cell's probability, ``[N]``."""
    return chain_log_mean(cell_log_probabilities(plan, flat, x, n_segments))


def chain_log_mean(log_p) -> jax.Array:
    """``log mean_c exp(log_p[:, c])``, ``[N]`` from per-chain log probabilities ``[N, C]``."""
    return jax.nn.logsumexp(log_p, axis=1) - jnp.log(log_p.shape[1])
