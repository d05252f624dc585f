"""Factor tables as padded device arrays.

Factors are grouped by arity into buckets; bucket ``a`` holds ``theta_a`` of shape
``[F_a, S**a]`` (``S`` is the largest state count; padding states carry zeros and are
never sampled). Two row tables are derived from them (JAX has no ragged arrays, so
every lookup is a row of ``S`` numbers at a precomputed index):

* the *conditional rows* ``R``: for each factor of arity 2 or 3 and each position ``j`` of its scope,
  the table with axis ``j`` moved last, as rows of ``S``; the conditional logits of a
  variable are a sum of such rows picked by its neighbours' current states;
* the *moment rows* ``M``: position 0 only; Rao-Blackwellised moments add the pivot
  variable's conditional probabilities into the row its neighbours select.

Row ``0`` of ``R`` is all zeros (padding slots point at it); the last ``S**2`` rows of
``M`` are a trash block for slots that are not their factor's pivot. The row index of a slot is
``base + x[o1] * S + x[o2]`` with ``o1``/``o2`` the other scope variables (the dummy
variable, always in state 0, where a scope is shorter). Unary tables need no lookup:
they are summed into each variable's base logits.
"""

from __future__ import annotations

from typing import NamedTuple

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from .graph import FactorGraph

ARITIES = (1, 2, 3)


def bucket(n: int, minimum: int = 1) -> int:
    """Round ``n`` up so similar sizes share compiled code (at least ``minimum``).

    Powers of two up to 4096; beyond, multiples of an eighth of the power of two below
    (at most 12.5% padding: a large graph's tables are most of the memory).
    """
    n = max(int(n), int(minimum), 1)
    if n <= 4096:
        return 1 << (n - 1).bit_length()
    step = 1 << (n.bit_length() - 4)
    return -(-n // step) * step


# Smallest padded sizes: the real problems (4-10 variables, a few dozen constraints)
# then fall into a handful of shapes, and a new problem rarely recompiles.
MIN_FACTORS = {1: 8, 2: 8, 3: 4}
MIN_VARS = 8


@attrs.frozen(eq=False)
class ArityBucket:
    """The factors of one arity: graph ids (``-1`` for padding) and scopes (padded with the dummy)."""

    arity: int
    factor_ids: np.ndarray  # int [F_pad]
    scopes: np.ndarray  # int [F_pad, arity]
    row_base: np.ndarray  # int [F_pad, arity]: first R row of each position's block
    moment_base: np.ndarray  # int [F_pad]: first M row of the position-0 block

    @property
    def size(self) -> int:
        return int(self.factor_ids.shape[0])


class LayoutShape(NamedTuple):
    """The static (hashable) sizes of a layout: equal shapes share compiled code."""

    n_states: int
    n_vars_padded: int
    n_rows: int
    n_moment_rows: int
    bucket_sizes: tuple[int, ...]  # factors per arity bucket, arities 1, 2, 3


@attrs.frozen(eq=False)
class TableLayout:
    """Where every factor's table lives in the padded bucket and row arrays."""

    n_states: int  # S
    n_vars: int  # real variables
    n_vars_padded: int  # chain rows before the dummy
    buckets: tuple[ArityBucket, ...]
    n_rows: int
    n_moment_rows: int

    @property
    def shape(self) -> LayoutShape:
        return LayoutShape(
            self.n_states, self.n_vars_padded, self.n_rows, self.n_moment_rows, tuple(b.size for b in self.buckets)
        )

    @property
    def dummy(self) -> int:
        return self.n_vars_padded

    @property
    def trash_row(self) -> int:
        """First of ``S**2`` spare moment rows: non-pivot slots add there (plus their offset)."""
        return self.n_moment_rows - self.n_states**2


def build_layout(graph: FactorGraph, n_states: int | None = None, pad: bool = True) -> TableLayout:
    """Lay the graph's factors out in arity buckets (sizes rounded up when ``pad``)."""
    S = int(n_states or max(graph.sizes))
    grow = bucket if pad else (lambda n, minimum=1: max(int(n), 1))
    n_vars_padded = grow(graph.n_vars, MIN_VARS)
    dummy = n_vars_padded
    by_arity = {a: [f for f in graph.factors if f.arity == a] for a in ARITIES}
    buckets = []
    row = 1  # row 0 is the zero row
    moment_row = 0
    for a in ARITIES:
        factors = by_arity[a]
        F = grow(len(factors), MIN_FACTORS[a])
        ids = np.full(F, -1, dtype=np.int64)
        scopes = np.full((F, a), dummy, dtype=np.int64)
        for i, f in enumerate(factors):
            ids[i] = f.id
            scopes[i] = f.var_ids
        block = S ** (a - 1)
        row_base = np.stack([row + j * F * block + np.arange(F) * block for j in range(a)], axis=1)
        row += a * F * block
        moment_base = moment_row + np.arange(F) * block
        moment_row += F * block
        buckets.append(ArityBucket(a, ids, scopes, row_base, moment_base))
    n_rows = grow(row) if pad else row
    n_moment_rows = grow(moment_row + S * S) if pad else moment_row + S * S
    return TableLayout(S, graph.n_vars, n_vars_padded, tuple(buckets), n_rows, n_moment_rows)


def pad_table(table: np.ndarray, n_states: int) -> np.ndarray:
    """Zero-pad every axis of a scope table to ``n_states``."""
    table = np.asarray(table, dtype=np.float64)
    out = np.zeros((n_states,) * table.ndim)
    out[tuple(slice(0, s) for s in table.shape)] = table  # far cheaper than np.pad per factor
    return out


def graph_tables(layout: TableLayout, graph: FactorGraph) -> tuple[np.ndarray, ...]:
    """The graph's factor parameters as padded bucket arrays ``[F_a, S**a]``."""
    S = layout.n_states
    out = []
    for b in layout.buckets:
        theta = np.zeros((b.size, S**b.arity), dtype=np.float32)
        for i, fid in enumerate(b.factor_ids):
            if fid >= 0:
                theta[i] = pad_table(graph.factors[fid].parameters, S).reshape(-1)
        out.append(theta)
    return tuple(out)


def unpad_tables(layout: TableLayout, graph: FactorGraph, buckets) -> list[np.ndarray]:
    """Bucket arrays back to one table per graph factor (padding states dropped)."""
    S = layout.n_states
    tables: list[np.ndarray | None] = [None] * len(graph.factors)
    for b, values in zip(layout.buckets, buckets):
        values = np.asarray(values, dtype=np.float64)
        for i, fid in enumerate(b.factor_ids):
            if fid >= 0:
                full = values[i].reshape((S,) * b.arity)
                shape = graph.factors[fid].table_shape
                tables[fid] = full[tuple(slice(0, s) for s in shape)]
    return tables


def state_mask(layout: TableLayout, graph: FactorGraph) -> tuple[np.ndarray, ...]:
    """1 where a bucket entry is a real state combination, 0 on padding."""
    S = layout.n_states
    sizes = np.array(graph.sizes + [1] * (layout.n_vars_padded + 1 - graph.n_vars))
    out = []
    for b in layout.buckets:
        mask = np.ones((b.size,) + (S,) * b.arity, dtype=np.float32)
        for j in range(b.arity):
            valid = np.arange(S)[None, :] < sizes[b.scopes[:, j]][:, None]
            shape = [b.size] + [1] * b.arity
            shape[1 + j] = S
            mask = mask * valid.reshape(shape)
        mask[b.factor_ids < 0] = 0.0
        out.append(mask.reshape(b.size, -1))
    return tuple(out)


def tables_to_rows(shape: LayoutShape, theta) -> jnp.ndarray:
    """Conditional row table ``R`` of shape ``[n_rows, S]`` from bucket tables."""
    S = shape.n_states
    blocks = [jnp.zeros((1, S), theta[0].dtype)]
    for arity, size, t in zip(ARITIES, shape.bucket_sizes, theta):
        full = t.reshape((size,) + (S,) * arity)
        for j in range(arity):
            blocks.append(jnp.moveaxis(full, 1 + j, -1).reshape(-1, S))
    rows = jnp.concatenate(blocks, axis=0)
    return jnp.pad(rows, ((0, shape.n_rows - rows.shape[0]), (0, 0)))


def unary_logits(shape: LayoutShape, theta, unary_scopes) -> jnp.ndarray:
    """Sum of the unary factor tables per variable, ``[V + 1, S]`` (folded into base logits)."""
    return jax.ops.segment_sum(theta[0], unary_scopes[:, 0], num_segments=shape.n_vars_padded + 1)


def moment_rows_to_tables(shape: LayoutShape, moment_rows, xp=jnp) -> tuple:
    """Bucket tables ``[F_a, S**a]`` from the accumulated moment rows ``[n_moment_rows, S]``."""
    S = shape.n_states
    out = []
    start = 0
    for arity, size in zip(ARITIES, shape.bucket_sizes):
        block = S ** (arity - 1)
        rows = moment_rows[start : start + size * block]  # [F*block (others), S (pivot)]
        start += size * block
        table = rows.reshape(size, block, S)
        out.append(xp.transpose(table, (0, 2, 1)).reshape(size, S**arity))
    return tuple(out)



def moment_rows_to_tables_host(shape: LayoutShape, moment_rows: np.ndarray) -> tuple[np.ndarray, ...]:
    """:func:`moment_rows_to_tables` in numpy (float64, no device round trip)."""
    return moment_rows_to_tables(shape, np.asarray(moment_rows), xp=np)
