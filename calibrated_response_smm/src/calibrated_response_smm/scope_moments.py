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

Layout: the cells of every factor are concatenated on one axis. A cell's log-weight
sums terms of two kinds. Factors inside the scope give constant entries of the flat
table vector (all bucket tables, padded to ``S`` states per axis), the same for every
chain. A factor reaching outside the scope gives a term that depends on the cell only
through the scope variables it shares. Those terms (a constant index plus at most two
``stride * x[w]`` for the outside variables) are evaluated once per chain and value of
the shared variables, and summed into *groups*: one per chosen factor, subset of its
scope and values of that subset. A cell then adds one group row per subset, a gather
of contiguous chain rows, where it gathered one scattered entry per touching factor
before (a three-variable scope of 21 bins with 16 touching factors: logits 2x, the
whole evaluation 5x faster). Sizes are padded to powers of two so that problems of
similar size share compiled code.
"""

from __future__ import annotations

import dataclasses
import functools

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from .features import TableLayout, bucket

MIN_CELLS = 256
MIN_TERMS = 4


@functools.partial(jax.tree_util.register_dataclass,
                   data_fields=["segment", "inner", "groups", "const", "w1", "m1", "w2", "m2", "group"],
                   meta_fields=["n_segments", "n_groups"])
@dataclasses.dataclass(frozen=True)
class ScopePlan:
    """Index maps of the scope estimator (device pytree; the segment counts are static)."""

    segment: jax.Array  # i32[N]: factor slot of each cell (padding: the last slot)
    inner: jax.Array  # i32[N, T_in]: flat table index of each term inside the scope (padding: the zero entry)
    groups: jax.Array  # i32[N, U]: the group each cell adds per subset (padding: the last group, all zero)
    const: jax.Array  # i32[R]: flat table index of each outside term at x_outside = 0 (padding: the zero entry)
    w1: jax.Array  # i32[R]: first outside variable of the term (dummy row: state 0)
    m1: jax.Array  # i32[R]: its stride in the flat table
    w2: jax.Array  # i32[R]
    m2: jax.Array  # i32[R]
    group: jax.Array  # i32[R]: the group the term adds to, ascending
    n_segments: int  # factor slots, padded (the last one collects padding cells)
    n_groups: int  # groups, padded (the last one is all padding)


@attrs.frozen(eq=False)
class HostScopePlan:
    """The estimator's arrays, and where each chosen factor's cells sit on the cell axis."""

    arrays: dict
    factor_ids: tuple[int, ...]
    offsets: tuple[int, ...]  # first cell of each chosen factor
    shapes: tuple[tuple[int, ...], ...]

    n_segments: int  # factor slots, padded (the last one collects padding cells)
    n_groups: int  # term groups, padded

    def device(self) -> ScopePlan:
        return ScopePlan(**{k: jnp.asarray(v) for k, v in self.arrays.items()}, n_segments=self.n_segments,
                         n_groups=self.n_groups)

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


def _shared_terms(layout: TableLayout, starts: list[int], scope: list[int]):
    """The touching factors of ``scope`` as ``(base, shared, outside)``: flat index of the
    factor's table, ``(variable, stride)`` of its scope variables, and of its others."""
    S = layout.n_states
    out = []
    for bi, pos, vars_g in _touching(layout, set(scope)):
        arity = len(vars_g)
        strides = [S ** (arity - 1 - j) for j in range(arity)]
        shared = [(v, m) for v, m in zip(vars_g, strides) if v in scope]
        outside = [(v, m) for v, m in zip(vars_g, strides) if v not in scope]
        out.append((starts[bi] + pos * S**arity, shared, outside))
    return out


def build_scope_plan(graph, layout: TableLayout, factor_ids, pad: bool = True) -> HostScopePlan:
    """The estimator for the scopes of ``factor_ids`` (graph factor ids)."""
    scopes = [tuple(int(v) for v in graph.factors[fid].var_ids) for fid in factor_ids]
    return scope_plan(graph, layout, scopes, tuple(int(f) for f in factor_ids), pad=pad)


#: The padded sizes of a scope plan: cells, inside terms per cell, subsets per cell, groups, outside terms.
PLAN_SIZES = ("n_cells", "n_inner", "n_subsets", "n_groups", "n_terms")


def scope_plan(graph, layout: TableLayout, scopes, ids, pad: bool = True,
               at_least: dict[str, int] | None = None) -> HostScopePlan:
    """The cells of every scope in ``scopes`` (tuples of variables; ``ids`` names them).

    ``at_least`` raises the padded sizes (:data:`PLAN_SIZES`): plans padded alike stack
    into one array per field (see :mod:`.mcmc.blocks`).
    """
    grow = bucket if pad else (lambda n, minimum=1: max(int(n), 1))
    at_least = at_least or {}
    dummy = layout.dummy
    starts, zero_entry = _flat_offsets(layout)
    cells = []  # per cell: (slot, [inside-scope index, ...], [group key per subset, ...])
    groups: dict[tuple, list] = {}  # (slot, shared variables, their values) -> [(const, w1, m1, w2, m2), ...]
    offsets, shapes = [], []
    for slot, scope in enumerate(scopes):
        scope = list(scope)
        shape = tuple(graph.sizes[v] for v in scope)
        offsets.append(len(cells))
        shapes.append(shape)
        inside_terms, subsets = [], set()
        for base, shared, outside in _shared_terms(layout, starts, scope):
            if not outside:  # the same for every chain
                inside_terms.append((base, shared))
                continue
            outside = outside + [(dummy, 0)] * (2 - len(outside))
            subset = tuple(sorted(v for v, _ in shared))
            subsets.add(subset)
            for values in np.ndindex(*[graph.sizes[v] for v in subset]):
                value = dict(zip(subset, values))
                const = base + sum(m * value[v] for v, m in shared)
                groups.setdefault((slot, subset, values), []).append(
                    (const, outside[0][0], outside[0][1], outside[1][0], outside[1][1]))
        subsets = sorted(subsets)
        for cell in np.ndindex(*shape):
            value = dict(zip(scope, cell))
            inside = [base + sum(m * value[v] for v, m in shared) for base, shared in inside_terms]
            keys = [(slot, u, tuple(value[v] for v in u)) for u in subsets]
            cells.append((slot, inside, keys))
    n_cells = max(grow(len(cells), MIN_CELLS), at_least.get("n_cells", 0))
    n_inner = max(grow(max([len(t) for _, t, _ in cells] + [1]), MIN_TERMS), at_least.get("n_inner", 0))
    # at most 2^arity - 1: few shapes to compile
    n_subsets = max(max([len(k) for _, _, k in cells] + [1]), at_least.get("n_subsets", 0))
    # at least one all-padding group for the padding slots to point at
    n_groups = max(grow(len(groups) + 1), at_least.get("n_groups", 0))
    n_terms = max(grow(sum(len(t) for t in groups.values()), MIN_CELLS), at_least.get("n_terms", 0))
    n_slots = len(scopes)
    group_index = {key: g for g, key in enumerate(groups)}
    segment = np.full(n_cells, n_slots, np.int32)
    inner = np.full((n_cells, n_inner), zero_entry, np.int32)
    cell_groups = np.full((n_cells, n_subsets), n_groups - 1, np.int32)
    for i, (slot, inside, keys) in enumerate(cells):
        segment[i] = slot
        inner[i, : len(inside)] = inside
        cell_groups[i, : len(keys)] = [group_index[k] for k in keys]
    terms = [(*entry, g) for g, members in enumerate(groups.values()) for entry in members]
    padding = (zero_entry, dummy, 0, dummy, 0, n_groups - 1)
    columns = np.array(terms + [padding] * (n_terms - len(terms)), np.int32).reshape(n_terms, 6).T
    arrays = dict(segment=segment, inner=inner, groups=cell_groups,
                  **dict(zip(("const", "w1", "m1", "w2", "m2", "group"), columns)))
    return HostScopePlan(arrays, tuple(ids), tuple(offsets), tuple(shapes), grow(n_slots + 1, 8), n_groups)


def plan_sizes(plan: HostScopePlan) -> dict[str, int]:
    """The padded sizes of ``plan`` (:data:`PLAN_SIZES`)."""
    a = plan.arrays
    return dict(n_cells=a["segment"].shape[0], n_inner=a["inner"].shape[1], n_subsets=a["groups"].shape[1],
                n_groups=plan.n_groups, n_terms=a["const"].shape[0])


def cell_logits(plan: ScopePlan, flat, x) -> jax.Array:
    """Unnormalised log conditional of every cell given each chain's outside variables, ``[N, C]``."""
    index = plan.const[:, None] + plan.m1[:, None] * x[plan.w1] + plan.m2[:, None] * x[plan.w2]  # [R, C]
    grouped = jax.ops.segment_sum(flat[index], plan.group, num_segments=plan.n_groups, indices_are_sorted=True)
    logits = jnp.sum(flat[plan.inner], axis=1)[:, None]
    for u in range(plan.groups.shape[1]):  # one row gather per subset of a scope (at most seven)
        logits = logits + grouped[plan.groups[:, u]]
    return logits


def cell_log_probabilities(plan: ScopePlan, flat, x) -> jax.Array:
    """Per chain, the log probability of each cell under its factor's scope conditional, ``[N, C]``.

    Kept in logs: a condition the multipliers make nearly impossible (probability
    1e-40, far below float32's range) still has a finite ratio ``P(A and C) / P(C)``.
    """
    logits = cell_logits(plan, flat, x)
    top = jax.ops.segment_max(logits, plan.segment, num_segments=plan.n_segments, indices_are_sorted=True)
    shifted = logits - top[plan.segment]
    total = jax.ops.segment_sum(jnp.exp(shifted), plan.segment, num_segments=plan.n_segments,
                                indices_are_sorted=True)
    return shifted - jnp.log(total)[plan.segment]


def scope_cell_log_means(plan: ScopePlan, flat, x) -> jax.Array:
    """Log of the chain average of each cell's probability, ``[N]``."""
    return chain_log_mean(cell_log_probabilities(plan, flat, x))


def chain_log_mean(log_p) -> jax.Array:
    """``log mean_c exp(log_p[:, c])``, ``[N]`` from per-chain log probabilities ``[N, C]``."""
    return jax.nn.logsumexp(log_p, axis=1) - jnp.log(log_p.shape[1])
