"""The chromatic Gibbs sweep over node-major chain states (device code, pure functions).

Chain states are ``x: int32[V + 1, C]`` (variable-major, one column per chain; row
``V`` is the dummy variable, always 0). A sweep runs the plan's stages
(:mod:`.plan`) one after another and scans each stage's blocks of same-coloured
variables, writing a block's new states before the next block reads them. Variables
of one colour share no factor, so updating a block for all chains in one vectorised
step is the same as updating them one after another: every variable is updated
exactly once per sweep, each update drawn from its exact conditional given the
current states, a sequential systematic-scan Gibbs sweep (in stage-then-colour order).

A block looks up one conditional row per factor slot (the factor's table with the
variable's axis last, at the other scope variables' states) and sums them with the
unary tables folded into the base logits. Binary models skip the rows: a slot adds
``c0 + c1 * x_other`` to the logit difference (``c0 .. c3`` for a triple), a handful
of vector multiply-adds over the chains. Each site draws one uniform from the
counter-based stream (:mod:`.stream`), keyed by its variable and its chain's global
index, and inverts the CDF.

Rao-Blackwellised moments: each pivot slot sums its conditionals over the block's
chains into block-local tables (a segment sum per pivot slot, in cache, or for a
wide pivot's pairs a one-hot product over the chains); the scan
stacks them per block, and only once per :func:`run_sweeps` call are they moved to
the moment-row layout, by one row gather. A scatter into the large moment table per
block would cost far more.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..features import LayoutShape, tables_to_rows, unary_logits
from ..scope_moments import flat_tables
from .blocks import block_moves, couplings
from .plan import NEG, Stage, SweepPlan
from .stream import ChainSpan, chain_uniforms, sweep_words, whole_span

# XLA options for every compiled function that sweeps. XLA:CPU hands some elementwise
# ops and reductions of a block to XNNPACK kernels, each a separate call with its own
# scratch and thread-pool hand-off; kept in XLA's own fused loops they are 5-15% faster
# (with chains split across devices). Other backends ignore the option.
SWEEP_COMPILER_OPTIONS = {"xla_cpu_use_xnnpack": False}


class Rows(NamedTuple):
    """What a sweep reads: conditional rows ``[n_rows, S]`` and base logits ``[V + 1, S]``.

    ``flat``: the flat tables the block moves read, and ``coupling`` each block's
    interaction span (both None where the plan has no blocks; see :mod:`.blocks`).
    """

    table: jax.Array
    base: jax.Array
    flat: jax.Array | None = None
    coupling: jax.Array | None = None


class Accumulators(NamedTuple):
    """Rao-Blackwellised sums over sweeps of chain averages (divide by ``sweeps``)."""

    moments: jax.Array  # f32[n_moment_rows, S]: pivot conditionals per moment row
    marginals: jax.Array  # f32[V + 1, S]: conditionals per variable
    changed: jax.Array  # f32[]: sites per chain whose state changed
    sweeps: jax.Array  # f32[]: sweeps accumulated


def zero_accumulators(shape: LayoutShape) -> Accumulators:
    """Empty sums for a layout of ``shape``."""
    S = shape.n_states
    return Accumulators(
        jnp.zeros((shape.n_moment_rows, S), jnp.float32),
        jnp.zeros((shape.n_vars_padded + 1, S), jnp.float32),
        jnp.zeros((), jnp.float32),
        jnp.zeros((), jnp.float32),
    )


def make_rows(plan: SweepPlan, shape: LayoutShape, theta) -> Rows:
    """Lookup rows and base logits (validity + unary tables) from bucket tables."""
    base = plan.valid_logits + unary_logits(shape, theta, plan.unary_scopes)
    if plan.blocks is None:
        return Rows(tables_to_rows(shape, theta), base)
    flat = flat_tables(theta)  # the couplings change only with the tables: once here, not per move
    return Rows(tables_to_rows(shape, theta), base, flat, couplings(plan.blocks, flat))


# -- one block ----------------------------------------------------------------------


class _Lookups(NamedTuple):
    """A block's neighbour states and conditional-row offsets (other states' part)."""

    pair_other: jax.Array  # i32[b, D2, C]: state of the other variable
    triple_offset: jax.Array  # i32[b, D3, C]: S * x[o1] + x[o2]
    old: jax.Array  # i32[b, C]: the block's own current states


def _lookups(x, S, blk: Stage) -> _Lookups:
    # Every read of x for a block happens here, before its in-place update: a read
    # after it would make XLA copy the whole chain array once per block.
    triple = x[blk.triple_o1] * S + x[blk.triple_o2]
    return _Lookups(x[blk.pair_other], triple, x[blk.vars])


def _rows_sum(table, rows, offset):
    """Sum over slots of ``table[rows + offset]``: ``[b, D]`` rows and ``[b, D, C]`` offsets to ``[b, C, S]``.

    Blocks of several variables take one gather feeding the slot sum (XLA fuses the
    two); a block of one variable, where the chains are many, a gather per slot (the
    fused form measured 2.5 times slower there).
    """
    if rows.shape[-1] == 0:
        return 0.0
    if rows.shape[0] > 1:
        return table.at[rows[:, :, None] + offset].get(mode="promise_in_bounds").sum(axis=1)
    total = 0.0
    for d in range(rows.shape[-1]):  # static unroll
        total = total + table.at[rows[:, d, None] + offset[:, d]].get(mode="promise_in_bounds")
    return total


def block_logits(rows: Rows, blk: Stage, look: _Lookups):
    """Conditional logits ``[b, C, w]`` of one block (``rows`` cut to the stage's width ``w``)."""
    b, C = blk.vars.shape[0], look.pair_other.shape[-1]
    logits = jnp.broadcast_to(rows.base[blk.vars][:, None, :], (b, C, rows.base.shape[1]))
    logits = logits + _rows_sum(rows.table, blk.pair_row, look.pair_other)
    return logits + _rows_sum(rows.table, blk.triple_row, look.triple_offset)


def _differences(table, index):
    """Logit differences ``table[index, 1] - table[index, 0]`` for small index arrays."""
    r = table.at[index].get(mode="promise_in_bounds")
    return r[..., 1] - r[..., 0]


def binary_logit(rows: Rows, blk: Stage, look: _Lookups):
    """``logit[1] - logit[0]`` ``[b, C]`` of one block of a binary model.

    A pair slot's difference is affine in the other state, ``c0 + c1 * t``; a triple
    slot's is bilinear in its two others. The constants fold into one bias per
    variable, so a slot costs one or three multiply-adds per chain.
    """
    base = rows.base[blk.vars]
    bias = base[:, 1] - base[:, 0]  # [b]
    slope_terms = 0.0
    if blk.pair_row.shape[-1]:
        d = _differences(rows.table, blk.pair_row[..., None] + jnp.arange(2))  # [b, D2, t]
        bias = bias + d[..., 0].sum(axis=1)
        c1 = d[..., 1] - d[..., 0]
        slope_terms = jnp.sum(c1[..., None] * look.pair_other.astype(jnp.float32), axis=1)
    if blk.triple_row.shape[-1]:
        d = _differences(rows.table, blk.triple_row[..., None] + jnp.arange(4))  # [b, D3, 2*t1 + t2]
        bias = bias + d[..., 0].sum(axis=1)
        c1, c2 = d[..., 2] - d[..., 0], d[..., 1] - d[..., 0]
        c3 = d[..., 3] - d[..., 2] - d[..., 1] + d[..., 0]
        t1 = (look.triple_offset >> 1).astype(jnp.float32)
        t2 = (look.triple_offset & 1).astype(jnp.float32)
        terms = c1[..., None] * t1 + t2 * (c2[..., None] + c3[..., None] * t1)
        slope_terms = slope_terms + terms.sum(axis=1)
    return jnp.broadcast_to(bias[:, None] + slope_terms, look.pair_other.shape[::2])


def sample_states(logits, u, temperature):
    """Inverse-CDF draw per site from logits ``[..., S]``.

    Returns (states int32[...], probabilities [..., S]).
    """
    S = logits.shape[-1]
    if temperature != 1.0:
        logits = logits / temperature
    if S == 2:
        return sample_binary(logits[..., 1] - logits[..., 0], u, 1.0)
    states_major = jnp.moveaxis(logits, -1, 0)  # in-cache transpose: each state a contiguous plane
    top = jnp.max(states_major, axis=0)
    weights = jnp.exp(states_major - top)
    total = jnp.sum(weights, axis=0)
    threshold = u * total
    cumulative = jnp.zeros_like(total)
    states = jnp.zeros(total.shape, jnp.int32)
    for s in range(S - 1):  # static unroll: a running sum beats cumsum's reduce_window
        cumulative = cumulative + weights[s]
        states = states + (cumulative < threshold)
    return states, jnp.moveaxis(weights / total, 0, -1)


def sample_binary(delta, u, temperature):
    """Draw from the logistic of the logit difference ``delta``; (states, probabilities ``[..., 2]``)."""
    if temperature != 1.0:
        delta = delta / temperature
    p1 = jax.nn.sigmoid(delta)
    return (u < p1).astype(jnp.int32), jnp.stack([1.0 - p1, p1], axis=-1)


def draw_block(rows: Rows, blk: Stage, look: _Lookups, u, temperature, binary_model: bool = False):
    """New states ``[b, C]`` and conditional probabilities ``[b, C, w]`` of one block.

    ``binary_model``: every variable is binary (the affine logit differences of
    :func:`binary_logit` hold only then, not for a binary variable beside wider ones).
    """
    if binary_model:
        return sample_binary(binary_logit(rows, blk, look), u, temperature)
    return sample_states(block_logits(rows, blk, look), u, temperature)


class StageSums(NamedTuple):
    """One stage's Rao-Blackwellised sums, laid out like its blocks (chain averages, summed over sweeps).

    A pivot slot's table moment is ``sum_c onehot(x_other)[c, t] p[c, s]``: a small
    matrix product per block, written to the block's own slice (no scatter).
    """

    unary: jax.Array  # f32[n_blocks, b, P1, S]
    pair: jax.Array  # f32[n_blocks, b, P2, S (other), S]
    triple: jax.Array  # f32[n_blocks, b, P3, S * S (others), S]
    marginal: jax.Array  # f32[n_blocks, b, S]


def zero_sums(plan: SweepPlan, S: int) -> tuple:
    """Zero :class:`StageSums` for every stage."""

    def zeros(stage: Stage) -> StageSums:
        n_blocks, b = stage.vars.shape
        P1, P2, P3 = (m.shape[-1] for m in (stage.unary_moment, stage.pair_moment, stage.triple_moment))
        return StageSums(
            jnp.zeros((n_blocks, b, P1, S), jnp.float32),
            jnp.zeros((n_blocks, b, P2, S, S), jnp.float32),
            jnp.zeros((n_blocks, b, P3, S * S, S), jnp.float32),
            jnp.zeros((n_blocks, b, S), jnp.float32),
        )

    return tuple(zeros(stage) for stage in plan.stages)


#: A wide pivot (more than two states) sums its pair slots by a one-hot matrix product
#: over the chains for at most this many cells of the other variable. On a 1,000-variable
#: synthetic tree (2,048 chains) that took a sweep with the sums from 96-109 ms to 77-86 ms
#: at 21 bins, 172 to 145 at 41 and 298 to 272 at 81; binary pivots and triples (``S^2``
#: cells) keep the segment sums.
ONE_HOT_MAX_CELLS = 128


def _pivot_moments(others, probs, n_cells: int):
    """``[b, P, n_cells, S]``: per pivot slot, the chains' conditionals summed by the others' cell.

    A segment sum into a block-local table per slot (small enough to stay in cache),
    or for a wide pivot's pair slots a one-hot matrix product (:data:`ONE_HOT_MAX_CELLS`).
    """
    b, P, C = others.shape
    S = probs.shape[-1]
    if P == 0:
        return jnp.zeros((b, 0, n_cells, S), probs.dtype)
    if S > 2 and n_cells <= ONE_HOT_MAX_CELLS:
        by_state = jnp.swapaxes(probs, 1, 2)  # [b, S, C]: the chains contracted as the last axis of both
        cells = jnp.arange(n_cells, dtype=others.dtype)[None, :, None]
        slots = [
            jnp.einsum("bnc,bsc->bns", (others[:, p, None, :] == cells).astype(probs.dtype), by_state,
                       precision=jax.lax.Precision.HIGHEST)
            for p in range(P)
        ]
        return jnp.stack(slots, axis=1)
    flat = probs.reshape(b * C, S)
    owner = (jnp.arange(b, dtype=others.dtype) * n_cells)[:, None]
    slots = [
        jax.ops.segment_sum(flat, (owner + others[:, p]).reshape(-1), num_segments=b * n_cells).reshape(b, n_cells, S)
        for p in range(P)
    ]
    return jnp.stack(slots, axis=1)


def _widen(a, S: int):
    """Zero-pad the last (pivot state) axis from the stage's width to ``S``."""
    w = a.shape[-1]
    return a if w == S else jnp.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, S - w)])


def _pair_moments(blk: Stage, look: _Lookups, probs, S: int):
    """The pair pivot slots' sums ``[b, P2, S, w]``.

    A one-variable block (a wide variable, many chains) forms only the slots it
    pivots (``lax.cond`` per slot): a stage's slot count is its busiest member's, so
    most of its members pad slots that they do not pivot.
    """
    P2 = blk.pair_moment.shape[-1]
    others = look.pair_other[:, :P2]
    if others.shape[0] > 1 or P2 == 0:
        return _pivot_moments(others, probs, S)
    zeros = jnp.zeros((1, 1, S, probs.shape[-1]), probs.dtype)
    slots = [
        jax.lax.cond(blk.pair_pivot[0, p], lambda o: _pivot_moments(o, probs, S), lambda o: zeros,
                     others[:, p : p + 1])
        for p in range(P2)
    ]
    return jnp.concatenate(slots, axis=1)


def block_sums(blk: Stage, look: _Lookups, probs, scale, S: int) -> StageSums:
    """A block's contribution (times ``scale``) to its stage's sums: ``[b, ...]`` slices, ``S`` wide.

    ``probs`` are ``[b, C, w]`` at the stage's width; the segment sums run at that width
    and only their results are padded to the layout's ``S`` states.
    """
    P1, P2, P3 = (m.shape[-1] for m in (blk.unary_moment, blk.pair_moment, blk.triple_moment))
    marginal = _widen(probs.sum(axis=1) * scale, S)  # [b, S]
    pair = _widen(_pair_moments(blk, look, probs, S) * scale, S)  # [b, P2, other, pivot]
    pair = jnp.where(blk.pair_flip[..., None, None], jnp.swapaxes(pair, -1, -2), pair)  # M rows: [second, first]
    return StageSums(
        jnp.broadcast_to(marginal[:, None], (marginal.shape[0], P1, S)),
        pair,
        _widen(_pivot_moments(look.triple_offset[:, :P3], probs, S * S) * scale, S),
        marginal,
    )


def stage_step(rows: Rows, x, words, span: ChainSpan, stage: Stage, temperature, accumulate):
    """Update every block of ``stage`` in turn, writing each block's states before the next reads.

    ``span``: the global indices of the chains in ``x`` (their random streams).

    Returns the chains and, when ``accumulate``, the stage's :class:`StageSums` for
    this sweep (the scan's stacked per-block outputs) and the changed-site count.
    The draw and the block's sums sit under ``lax.cond`` (padding blocks skip them);
    the chains are updated outside it, in place.
    """
    n_blocks, b = stage.vars.shape
    S = rows.table.shape[1]
    C = x.shape[1]
    w = stage.states.shape[0]
    if w < S:  # the stage's variables take only the first w states: sweep at that width
        rows = rows._replace(table=rows.table[:, :w], base=rows.base[:, :w])

    def body(x, k):
        blk = jax.tree.map(lambda a: a[k], stage)
        look = _lookups(x, S, blk)
        u = chain_uniforms(words, blk.vars, span, C)

        def live(look, u):
            states, probs = draw_block(rows, blk, look, u, temperature, S == 2)
            # a plain sweep never forms the sums, so the probabilities are never divided out
            sums = (block_sums(blk, look, probs, 1.0 / C, S),) if accumulate else ()
            return states, sums, jnp.sum(states != look.old)

        def idle(look, u):
            return jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), jax.eval_shape(live, look, u))

        states, sums, changed = jax.lax.cond(blk.live, live, idle, look, u)
        out = (sums[0], changed / C) if accumulate else None
        return x.at[blk.vars].set(states, mode="promise_in_bounds"), out

    x, out = jax.lax.scan(body, x, jnp.arange(n_blocks, dtype=jnp.uint32))
    if accumulate:
        out = (out[0], jnp.sum(out[1]))
    return x, out


def _sweep(plan: SweepPlan, rows: Rows, x, words, sums, temperature, span: ChainSpan):
    """One full sweep (every stage in turn).

    ``sums``: None (no accumulation), ``(None, 0.0)`` (this sweep's sums only, no
    zero buffers to add to) or ``(tuple of StageSums, changed)`` to add to.
    """
    totals = []
    for index, stage in enumerate(plan.stages):
        x, out = stage_step(rows, x, words, span, stage, temperature, sums is not None)
        if sums is not None:
            totals.append(out[0] if sums[0] is None else jax.tree.map(jnp.add, sums[0][index], out[0]))
            sums = (sums[0], sums[1] + out[1])
    x = x.at[-1].set(0)  # padding slots wrote the dummy row
    return x, None if sums is None else (tuple(totals), sums[1])


def to_accumulators(plan: SweepPlan, sums, n_sweeps, acc: Accumulators) -> Accumulators:
    """``acc`` plus the stage sums, moved to the moment-row and variable layouts (row gathers)."""
    totals, changed = sums
    S = acc.moments.shape[1]
    flat = [p for t in totals for p in (t.unary, t.pair, t.triple)]
    flat = jnp.concatenate([p.reshape(-1, S) for p in flat] + [jnp.zeros((1, S), jnp.float32)])
    marginal = jnp.concatenate([t.marginal.reshape(-1, S) for t in totals] + [jnp.zeros((1, S), jnp.float32)])
    return Accumulators(
        acc.moments + flat[plan.moment_source],
        acc.marginals + marginal[plan.marginal_source],
        acc.changed + changed,
        acc.sweeps + n_sweeps,
    )


def _one_sweep(plan: SweepPlan, rows: Rows, x, words, acc, temperature, accumulate, span: ChainSpan):
    """One full sweep; adds its Rao-Blackwellised sums to ``acc`` when ``accumulate``."""
    if not accumulate:
        return _sweep(plan, rows, x, words, None, temperature, span)[0], acc
    x, sums = _sweep(plan, rows, x, words, (None, jnp.zeros((), jnp.float32)), temperature, span)
    return x, to_accumulators(plan, sums, 1.0, acc)


def run_sweeps(plan: SweepPlan, rows: Rows, x, seed, counter, acc, n_sweeps: int, *, temperature=1.0, accumulate=True,
               span=None):
    """Sweeps ``counter .. counter + n_sweeps - 1`` of the stream ``seed`` under ``lax.scan``.

    ``span``: the global indices of the chains in ``x`` (None: they are all the chains).
    """
    span = whole_span(x.shape[1]) if span is None else span
    if n_sweeps == 1:  # no sums buffers to carry (saves their memory and one pass)
        x, acc = _one_sweep(plan, rows, x, sweep_words(seed, counter), acc, temperature, accumulate, span)
        return apply_block_moves(plan, rows, x, seed, counter, span, temperature), acc
    sums = (zero_sums(plan, rows.table.shape[1]), jnp.zeros((), jnp.float32)) if accumulate else None

    def body(carry, i):
        x, sums = carry
        return _sweep(plan, rows, x, sweep_words(seed, counter + i), sums, temperature, span), None

    (x, sums), _ = jax.lax.scan(body, (x, sums), jnp.arange(n_sweeps, dtype=jnp.uint32))
    if accumulate:
        acc = to_accumulators(plan, sums, float(n_sweeps), acc)
    return apply_block_moves(plan, rows, x, seed, counter + jnp.uint32(n_sweeps - 1), span, temperature), acc


def apply_block_moves(plan: SweepPlan, rows: Rows, x, seed, counter, span: ChainSpan, temperature):
    """``x`` after the plan's block moves (:mod:`.blocks`; none where it has no blocks).

    Each kernel step ends with them; a caller stepping one sweep at a time strips the
    plan's blocks for those steps and calls this once per group of sweeps.
    """
    if plan.blocks is None:
        return x
    span = whole_span(x.shape[1]) if span is None else span
    return block_moves(plan.blocks, rows.flat, rows.coupling, x, seed, counter, span, temperature)


def move_rate(plan: SweepPlan, acc: Accumulators) -> jax.Array:
    """Fraction of site updates that changed the state (Gibbs always accepts; this is its mixing gauge)."""
    return acc.changed / jnp.maximum(acc.sweeps, 1.0) / jnp.maximum(plan.n_sites, 1.0)


def random_states(plan: SweepPlan, seed, num_chains: int):
    """Chains drawn uniformly over each variable's states (the λ = 0 model, exactly)."""
    sizes = jnp.sum(plan.valid_logits > NEG / 2, axis=1)  # [V + 1]
    rows = jax.lax.iota(jnp.uint32, sizes.shape[0])
    u = chain_uniforms(sweep_words(seed, jnp.uint32(0xFFFFFFFF)), rows, whole_span(num_chains), num_chains)
    x = jnp.minimum((u * sizes[:, None]).astype(jnp.int32), sizes[:, None] - 1)
    return x.at[-1].set(0)

