"""Chromatic Gibbs kernels over node-major chain states.

Chain states are ``x: int32[V + 1, C]`` (variable-major, one column per chain; row
``V`` is the dummy variable, always 0). A colour class holds variables that share no
factor, so updating any set of same-coloured variables for all chains in one
vectorised step is the same as updating them one after another.

Variables are grouped into *stages* by their (padded) numbers of pairwise and
triple-wise factor slots and by their state width ``w`` (2 for a binary variable,
else the layout's ``S``), so a variable with two neighbours does not pay for the
largest degree in the graph, and a binary variable beside 21-state ones draws from
two logits, not 21. A stage is a list of blocks of ``b`` same-coloured
variables, in colour order; a sweep runs the stages one after another and scans
each stage's blocks, writing a block's new states before the next block reads
them. Every variable is updated exactly once per sweep, each update drawn from its
exact conditional given the current states: a sweep is a sequential systematic-scan
Gibbs sweep (in stage-then-colour order).

A block looks up one conditional row per factor slot (the factor's table with the
variable's axis last, at the other scope variables' states) and sums them with the
unary tables folded into the base logits. Binary models skip the rows: a slot adds
``c0 + c1 * x_other`` to the logit difference (``c0 .. c3`` for a triple), a handful
of vector multiply-adds over the chains. Each site draws one uniform from a
counter-based hash and inverts the CDF. Padding entries are the dummy variable,
whose base logits pin it to state 0. A site's uniform is keyed by its variable and its
chain's global index, so the draws do not depend on the blocks or on how the chains
are split across devices.

Rao-Blackwellised moments: a factor's pivot adds its conditional probabilities to
the table row its other variables' states select. A triple's pivot is its first
scope variable; pairs are oriented so that no variable pivots more than half its
pairs (rounded up), since a block pays for its largest pivot count in every slot. A
block sums these over its chains into block-local tables (a segment sum per pivot
slot, in cache); the scan stacks them per block, and only once per
:func:`run_sweeps` call are they moved to the moment-row layout, by one row gather.
A scatter into the large moment table per block would cost far more.
"""

from __future__ import annotations

from typing import NamedTuple

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from ..features import LayoutShape, TableLayout, bucket
from ..graph import FactorGraph, greedy_colouring

NEG = -1e9  # logit of a padding state: exp underflows to exactly 0
# XLA options for every compiled function that sweeps. XLA:CPU hands some elementwise
# ops and reductions of a block to XNNPACK kernels, each a separate call with its own
# scratch and thread-pool hand-off; kept in XLA's own fused loops they are 5-15% faster
# (with chains split across devices). Other backends ignore the option.
SWEEP_COMPILER_OPTIONS = {"xla_cpu_use_xnnpack": False}
BLOCK_FLOATS = 1 << 16  # logits per block (sites x states): a block's arrays stay in L2 cache
BINARY_BLOCK_SITES = 1 << 15  # sites per block of the binary kernel (a few arrays of [b, C])
# Graphs at least this large get one stage per degree bucket; smaller ones get a single
# stage (padding costs little there, and fewer shapes mean fewer compilations). At 1,000
# variables with a few high-degree hubs, one stage padded every variable to the largest
# degree: staging made the sweep 5.6 times faster there.
STAGED_MIN_VARS = 256
DEGREE_BUCKETS = (0, 1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64)


class Stage(NamedTuple):
    """Blocks of same-coloured variables with equal padded slot counts (device arrays).

    ``D2``/``D3``: pairwise/triple slots per variable; ``P2``/``P3``: the leading slots
    that may be the factor's pivot (a triple's first scope variable, a pair's
    :func:`balanced_pivots` choice), which carries the factor's Rao-Blackwellised moments.
    """

    vars: jax.Array  # i32[n_blocks, b]: variable row per slot (dummy: padding)
    live: jax.Array  # bool[n_blocks]: block has a real variable
    pair_row: jax.Array  # i32[n_blocks, b, D2]: R row at other state 0 (0: the zero row)
    pair_other: jax.Array  # i32[n_blocks, b, D2]: the other scope variable (dummy: padding)
    triple_row: jax.Array  # i32[n_blocks, b, D3]: R row at other states (0, 0)
    triple_o1: jax.Array  # i32[n_blocks, b, D3]: first other variable (weighted by S)
    triple_o2: jax.Array  # i32[n_blocks, b, D3]: second other variable (weighted by 1)
    unary_moment: jax.Array  # i32[n_blocks, b, P1]: M row of the variable's unary factors (trash: padding)
    pair_moment: jax.Array  # i32[n_blocks, b, P2]: M row at other state 0 (trash block: not a pivot)
    pair_flip: jax.Array  # bool[n_blocks, b, P2]: the pivot is the pair's second variable (sums transposed)
    triple_moment: jax.Array  # i32[n_blocks, b, P3]
    states: jax.Array  # i32[w]: 0 .. w - 1, the states the stage's variables can take (w <= S)


class SweepPlan(NamedTuple):
    """Index maps of one graph for the sweep (device pytree, built once on the host)."""

    valid_logits: jax.Array  # f32[V + 1, S]: 0 on real states, NEG on padding states
    unary_scopes: jax.Array  # i32[F_1, 1]: variable of each unary factor (dummy: padding)
    n_sites: jax.Array  # f32[]: real variables updated per sweep and chain
    moment_source: jax.Array  # i32[n_moment_rows]: row of the flat stage sums behind each M row (last: zeros)
    marginal_source: jax.Array  # i32[V + 1]: row of the flat stage marginals behind each variable (last: zeros)
    stages: tuple  # Stage per degree bucket, run in order


class Rows(NamedTuple):
    """What a sweep reads: conditional rows ``[n_rows, S]`` and base logits ``[V + 1, S]``."""

    table: jax.Array
    base: jax.Array


class Accumulators(NamedTuple):
    """Rao-Blackwellised sums over sweeps of chain averages (divide by ``sweeps``)."""

    moments: jax.Array  # f32[n_moment_rows, S]: pivot conditionals per moment row
    marginals: jax.Array  # f32[V + 1, S]: conditionals per variable
    changed: jax.Array  # f32[]: sites per chain whose state changed
    sweeps: jax.Array  # f32[]: sweeps accumulated


def zero_accumulators(shape: LayoutShape) -> Accumulators:
    S = shape.n_states
    return Accumulators(
        jnp.zeros((shape.n_moment_rows, S), jnp.float32),
        jnp.zeros((shape.n_vars_padded + 1, S), jnp.float32),
        jnp.zeros((), jnp.float32),
        jnp.zeros((), jnp.float32),
    )


@attrs.frozen(eq=False)
class HostPlan:
    """The colouring and the padded index maps, kept on the host."""

    colours: np.ndarray  # colour per variable
    arrays: dict  # SweepPlan fields other than ``stages``
    stages: tuple  # one dict of Stage fields per stage
    n_sites: int  # real variables updated per sweep and chain

    def device(self) -> SweepPlan:
        stages = tuple(Stage(**{k: jnp.asarray(v) for k, v in s.items()}) for s in self.stages)
        arrays = {k: jnp.asarray(v) for k, v in self.arrays.items()}
        return SweepPlan(n_sites=jnp.asarray(float(self.n_sites), jnp.float32), stages=stages, **arrays)


# -- host side: slots, stages and blocks (vectorised numpy) ------------------------------


class _Slots(NamedTuple):
    """Lookup slots of one arity, sorted by variable with pivots first."""

    var: np.ndarray  # variable of the slot
    row: np.ndarray  # R row at other states 0
    o1: np.ndarray  # other variables (o1 = dummy for pairs)
    o2: np.ndarray
    moment: np.ndarray  # M row base where the slot is its factor's pivot, else the trash block
    flip: np.ndarray  # the slot is its factor's pivot at scope position 1
    rank: np.ndarray  # position among the variable's slots
    degree: np.ndarray  # slots per variable [V + 1]
    pivots: np.ndarray  # pivot slots per variable [V + 1]


def balanced_pivots(scopes: np.ndarray, n_vars: int) -> np.ndarray:
    """Scope position (0 or 1) of each pair's pivot: at most ``ceil(d / 2)`` pivots per variable of ``d`` pairs.

    Odd-degree variables are joined two by two by virtual pairs, so every degree is
    even; a trail then leaves every variable as often as it enters, and following
    unused pairs from any variable closes a trail there. Each pair's pivot is the
    variable the trail enters. One pass over the pairs (a host loop, like a colouring).
    """
    first, second = scopes[:, 0], scopes[:, 1]
    degree = np.bincount(scopes.reshape(-1), minlength=n_vars)
    odd = np.nonzero(degree % 2)[0]
    tails = np.concatenate([first, odd[0::2], second, odd[1::2]])
    heads = np.concatenate([second, odd[1::2], first, odd[0::2]])
    n_edges = len(tails) // 2
    order = np.argsort(tails, kind="stable")
    neighbour = heads[order].tolist()
    edge = (order % n_edges).tolist()
    ends = np.cumsum(np.bincount(tails, minlength=n_vars))
    next_slot = (ends - np.bincount(tails, minlength=n_vars)).tolist()
    ends = ends.tolist()
    used = bytearray(n_edges)
    entered = [0] * n_edges
    for start in range(n_vars):
        v = start
        while True:  # walk unused pairs until the trail closes at ``start``
            p, stop = next_slot[v], ends[v]
            while p < stop and used[edge[p]]:
                p += 1
            next_slot[v] = p
            if p == stop:
                break
            e = edge[p]
            used[e] = 1
            v = entered[e] = neighbour[p]
    return (np.asarray(entered[: len(first)]) == second).astype(np.int64)


def _slots(layout: TableLayout, arity: int) -> _Slots:
    """Every (factor, scope position) of the real factors of ``arity``, vectorised.

    The pivot is scope position 0, or for pairs the :func:`balanced_pivots` one.
    """
    dummy, n = layout.dummy, layout.dummy + 1
    b = layout.buckets[arity - 1]
    real = np.nonzero(b.factor_ids >= 0)[0]
    scopes = b.scopes[real]
    var = scopes.T.reshape(-1)  # position-major: [a * F]
    pos = np.repeat(np.arange(arity), len(real))
    row = b.row_base[real].T.reshape(-1)
    others = [np.delete(scopes, j, axis=1) for j in range(arity)]
    others = np.concatenate(others, axis=0)  # [a * F, a - 1]
    o1 = others[:, 0] if arity == 3 else np.full(len(var), dummy)
    o2 = others[:, -1] if arity > 1 else np.full(len(var), dummy)
    pivot = balanced_pivots(scopes, n) if arity == 2 else np.zeros(len(real), np.int64)
    is_pivot = pos == np.tile(pivot, arity)
    moment = np.where(is_pivot, np.tile(b.moment_base[real], arity), layout.trash_row)
    flip = is_pivot & (pos == 1)
    order = np.lexsort((~is_pivot, var))  # by variable, pivots first
    var, row, o1, o2, moment, flip = (a[order] for a in (var, row, o1, o2, moment, flip))
    degree = np.bincount(var, minlength=n)
    pivots = np.bincount(var[moment != layout.trash_row], minlength=n)
    start = np.concatenate([[0], np.cumsum(degree)[:-1]])
    rank = np.arange(len(var)) - start[var]
    return _Slots(var, row, o1, o2, moment, flip, rank, degree, pivots)


def _round_degree(d: np.ndarray) -> np.ndarray:
    """Slot counts rounded up to :data:`DEGREE_BUCKETS` (powers of two beyond its end)."""
    steps = np.array(DEGREE_BUCKETS)
    rounded = steps[np.minimum(np.searchsorted(steps, d), len(steps) - 1)]
    beyond = 1 << np.ceil(np.log2(np.maximum(d, 1))).astype(np.int64)
    return np.where(d > steps[-1], beyond, rounded)


def state_widths(sizes: np.ndarray, S: int) -> np.ndarray:
    """State width a variable is swept at: 2 for a binary variable, else ``S``.

    Only the binary/rest split is made: in mixed models most variables are binary, and
    each further width would be one more compiled stage shape.
    """
    return np.where(np.asarray(sizes) <= 2, 2, S).astype(np.int64)


def _stage_keys(pairs: _Slots, triples: _Slots, widths: np.ndarray, staged: bool) -> np.ndarray:
    """Stage key ``(D2, D3, w)`` per real variable: rounded degrees, or the maxima when not staged.

    Not staged (small graphs), every variable shares one stage at the widest width.
    """
    n_vars = len(widths)
    d2, d3 = pairs.degree[:n_vars], triples.degree[:n_vars]
    if staged:
        return np.stack([_round_degree(d2), _round_degree(d3), widths], axis=1)
    top = [bucket(int(d.max())) if d.size and d.max() else 0 for d in (d2, d3)]
    top.append(int(widths.max()) if n_vars else 2)
    return np.tile(np.array(top, np.int64), (n_vars, 1))


def _block_size(S: int, num_chains: int, largest: int, binary: bool) -> int:
    """Variables per block: a power of two, a block's logits in cache, no larger than needed."""
    sites = BINARY_BLOCK_SITES if binary else max(BLOCK_FLOATS // S, 1024)
    b = max(min(sites // max(num_chains, 1), largest), 1)
    return 1 << (b.bit_length() - 1)


def _fill(shape, fill, index, values):
    out = np.full(shape, fill, np.int32)
    out[index] = values
    return out


def _stage_arrays(members, colours, unaries, pairs, triples, D2, D3, w, b, layout, pad):
    """Blocks of one stage: ``members`` (sorted by colour) cut into blocks of ``b`` per colour."""
    dummy, trash = layout.dummy, layout.trash_row
    col = colours[members]
    counts = np.bincount(col)
    blocks_per = -(-counts // b)
    first_block = np.concatenate([[0], np.cumsum(blocks_per)[:-1]])
    colour_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(members)) - colour_start[col]
    block = first_block[col] + rank // b
    local = rank % b
    n_blocks = int(blocks_per.sum())
    if pad:
        n_blocks = bucket(n_blocks) if n_blocks <= 64 else -(-n_blocks // 8) * 8
    where_block = np.full(dummy + 1, -1)
    where_local = np.zeros(dummy + 1, np.int64)
    where_block[members], where_local[members] = block, local
    P1 = int(_round_degree(unaries.pivots[members].max()))
    P2 = min(D2, int(_round_degree(pairs.pivots[members].max())))
    P3 = min(D3, int(_round_degree(triples.pivots[members].max())))

    def slot_maps(slots: _Slots, D: int, P: int):
        keep = where_block[slots.var] >= 0
        k, l, r = where_block[slots.var[keep]], where_local[slots.var[keep]], slots.rank[keep]
        shape = (n_blocks, b, D)
        row = _fill(shape, 0, (k, l, r), slots.row[keep])
        o1 = _fill(shape, dummy, (k, l, r), slots.o1[keep])
        o2 = _fill(shape, dummy, (k, l, r), slots.o2[keep])
        first = r < P
        at = (k[first], l[first], r[first])
        moment = _fill((n_blocks, b, P), trash, at, slots.moment[keep][first])
        flip = _fill((n_blocks, b, P), 0, at, slots.flip[keep][first]).astype(bool)
        return row, o1, o2, moment, flip

    pair_row, _, pair_other, pair_moment, pair_flip = slot_maps(pairs, D2, P2)
    triple_row, triple_o1, triple_o2, triple_moment, _ = slot_maps(triples, D3, P3)
    unary_moment = slot_maps(unaries, P1, P1)[3]
    vars_ = _fill((n_blocks, b), dummy, (block, local), members)
    return dict(
        vars=vars_,
        live=np.any(vars_ != dummy, axis=1),
        pair_row=pair_row,
        pair_other=pair_other,
        triple_row=triple_row,
        triple_o1=triple_o1,
        triple_o2=triple_o2,
        unary_moment=unary_moment,
        pair_moment=pair_moment,
        pair_flip=pair_flip,
        triple_moment=triple_moment,
        states=np.arange(w, dtype=np.int32),
    )


def _source_maps(stages, layout: TableLayout) -> tuple[np.ndarray, np.ndarray]:
    """Where each moment row and each variable's marginal sits in the flat stage sums.

    The flat sums concatenate, stage by stage, the unary, pair and triple pivot sums
    (rows of ``S``; a pivot slot of arity ``a`` owns ``S**(a - 1)`` consecutive rows,
    one per state of its other variables), then one zero row that every unused
    moment row points at. Marginals: one row per block slot, then a zero row.
    """
    S, trash = layout.n_states, layout.trash_row
    moment_source = np.full(layout.n_moment_rows, -1, np.int64)
    marginal_source = np.full(layout.dummy + 1, -1, np.int64)
    flat = marginal_flat = 0
    for stage in stages:
        for key, cells in (("unary_moment", 1), ("pair_moment", S), ("triple_moment", S * S)):
            base = stage[key].reshape(-1)
            pivot = np.nonzero(base != trash)[0]
            rows = (base[pivot][:, None] + np.arange(cells)).reshape(-1)
            moment_source[rows] = (flat + pivot[:, None] * cells + np.arange(cells)).reshape(-1)
            flat += base.size * cells
        slots = stage["vars"].reshape(-1)
        real = np.nonzero(slots != layout.dummy)[0]
        marginal_source[slots[real]] = marginal_flat + real
        marginal_flat += slots.size
    moment_source[moment_source < 0] = flat
    marginal_source[marginal_source < 0] = marginal_flat
    return moment_source.astype(np.int32), marginal_source.astype(np.int32)


def build_plan(graph: FactorGraph, layout: TableLayout, num_chains: int, pad: bool = True) -> HostPlan:
    """Colour the graph and build the staged, blocked index maps for ``num_chains`` chains."""
    S = layout.n_states
    n = graph.n_vars
    colours = greedy_colouring(graph)
    unaries, pairs, triples = _slots(layout, 1), _slots(layout, 2), _slots(layout, 3)
    widths = state_widths(graph.sizes, S) if n else np.zeros(0, np.int64)
    keys = _stage_keys(pairs, triples, widths, staged=n >= STAGED_MIN_VARS)
    stages = []
    if n:
        unique, stage_of = np.unique(keys, axis=0, return_inverse=True)
        stage_of = stage_of.reshape(-1)
        for s, (D2, D3, w) in enumerate(unique):
            members = np.nonzero(stage_of == s)[0]
            members = members[np.argsort(colours[members], kind="stable")]
            largest = int(np.bincount(colours[members]).max())
            b = _block_size(int(w), num_chains, largest, binary=S == 2)
            stages.append(_stage_arrays(members, colours, unaries, pairs, triples, int(D2), int(D3), int(w), b,
                                        layout, pad))
    moment_source, marginal_source = _source_maps(stages, layout)
    sizes = np.ones(layout.n_vars_padded + 1, np.int64)
    sizes[:n] = graph.sizes
    valid_logits = np.where(np.arange(S)[None, :] < sizes[:, None], 0.0, NEG).astype(np.float32)
    arrays = dict(
        valid_logits=valid_logits,
        unary_scopes=layout.buckets[0].scopes.astype(np.int32),
        moment_source=moment_source,
        marginal_source=marginal_source,
    )
    return HostPlan(colours=colours, arrays=arrays, stages=tuple(stages), n_sites=n)


def make_rows(plan: SweepPlan, shape: LayoutShape, theta) -> Rows:
    """Lookup rows and base logits (validity + unary tables) from bucket tables."""
    from ..features import tables_to_rows, unary_logits

    base = plan.valid_logits + unary_logits(shape, theta, plan.unary_scopes)
    return Rows(tables_to_rows(shape, theta), base)


# -- random numbers ---------------------------------------------------------------
# A counter-based hash: one uniform per site at a few integer ops, far cheaper on CPU
# than threefry, and keyed per sweep from a jax PRNG key so runs are reproducible.
# A site's counter is ``variable row * total chains + global chain index``: the draw
# of chain ``c`` at variable ``v`` in a sweep depends on the seed, the sweep, ``v`` and
# ``c`` only, not on how the chains are split across devices or processes, nor on the
# block a variable sits in. Counters are unique while ``(V + 1) * chains < 2**32``
# (:func:`check_stream_capacity`).

STREAM_CAPACITY = 1 << 32  # distinct site counters of one sweep


class ChainSpan(NamedTuple):
    """Which chains a device holds: global indices ``offset .. offset + C - 1`` of ``total``."""

    offset: jax.Array | int  # u32: global index of the device's first chain
    total: jax.Array | int  # u32: chains across every device and process


def whole_span(num_chains: int) -> ChainSpan:
    """The span of a device holding all ``num_chains`` chains."""
    return ChainSpan(0, num_chains)


def check_stream_capacity(n_rows: int, num_chains: int) -> None:
    """Raise ValueError where ``n_rows`` chain rows x ``num_chains`` chains overflow the site counter."""
    if n_rows * num_chains >= STREAM_CAPACITY:
        raise ValueError(
            f"SMMConfig.num_chains={num_chains} with {n_rows} chain rows needs {n_rows * num_chains} random "
            f"streams per sweep, more than the sampler's 2**32: use fewer chains"
        )


def _fmix32(h):
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x7FEB352D)
    h = h ^ (h >> 15)
    h = h * jnp.uint32(0x846CA68B)
    return h ^ (h >> 16)


def sweep_words(seed, counter):
    """Two uint32 words for sweep number ``counter`` of a stream keyed by ``seed`` (uint32[2])."""
    c = jnp.asarray(counter, jnp.uint32)
    return jnp.stack([_fmix32(seed[0] ^ _fmix32(2 * c + 1)), _fmix32(seed[1] + _fmix32(2 * c + 2))])


def _uniforms(words, counter):
    """Uniforms in [0, 1) from uint32 counters, keyed by two uint32 ``words`` (two hash rounds)."""
    h = _fmix32(_fmix32(counter ^ words[0]) + words[1])
    return (h >> 8).astype(jnp.float32) * jnp.float32(1.0 / (1 << 24))


def site_uniforms(words, counter_offset, shape):
    """Uniforms in [0, 1) for ``shape`` sites numbered from ``counter_offset`` in row-major order."""
    counter = jax.lax.iota(jnp.uint32, int(np.prod(shape))).reshape(shape) + counter_offset
    return _uniforms(words, counter)


def chain_uniforms(words, rows, span: ChainSpan, n_chains: int):
    """Uniforms ``[len(rows), n_chains]`` of chain rows ``rows`` for the chains of ``span``.

    The counter of row ``v`` and global chain ``c`` is ``v * span.total + c``: the
    same whichever device holds the chain. Costs one add per site more than
    numbered sites (the row product is per row).
    """
    total = jnp.asarray(span.total, jnp.uint32)
    first = rows.astype(jnp.uint32) * total + jnp.asarray(span.offset, jnp.uint32)
    return _uniforms(words, first[:, None] + jax.lax.iota(jnp.uint32, n_chains)[None, :])


def seed_words(seed: int) -> np.ndarray:
    """The uint32[2] stream seed of an integer seed."""
    seed = int(seed) & 0xFFFFFFFFFFFFFFFF
    return np.array([seed & 0xFFFFFFFF, (seed >> 32) ^ 0x9E3779B9], dtype=np.uint32)


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


def _pivot_moments(others, probs, n_cells: int):
    """``[b, P, n_cells, S]``: per pivot slot, the chains' conditionals summed by the others' cell.

    A segment sum into a block-local table per slot (small enough to stay in cache).
    """
    b, P, C = others.shape
    S = probs.shape[-1]
    flat = probs.reshape(b * C, S)
    owner = (jnp.arange(b, dtype=others.dtype) * n_cells)[:, None]
    slots = [
        jax.ops.segment_sum(flat, (owner + others[:, p]).reshape(-1), num_segments=b * n_cells).reshape(b, n_cells, S)
        for p in range(P)
    ]
    return jnp.stack(slots, axis=1) if slots else jnp.zeros((b, 0, n_cells, S), probs.dtype)


def _widen(a, S: int):
    """Zero-pad the last (pivot state) axis from the stage's width to ``S``."""
    w = a.shape[-1]
    return a if w == S else jnp.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, S - w)])


def block_sums(blk: Stage, look: _Lookups, probs, scale, S: int) -> StageSums:
    """A block's contribution (times ``scale``) to its stage's sums: ``[b, ...]`` slices, ``S`` wide.

    ``probs`` are ``[b, C, w]`` at the stage's width; the segment sums run at that width
    and only their results are padded to the layout's ``S`` states.
    """
    P1, P2, P3 = (m.shape[-1] for m in (blk.unary_moment, blk.pair_moment, blk.triple_moment))
    marginal = _widen(probs.sum(axis=1) * scale, S)  # [b, S]
    pair = _widen(_pivot_moments(look.pair_other[:, :P2], probs, S) * scale, S)  # [b, P2, other, pivot]
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
        rows = Rows(rows.table[:, :w], rows.base[:, :w])

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


def sweep(plan: SweepPlan, rows: Rows, x, words, acc, *, temperature=1.0, accumulate=True, span=None):
    """One full sweep; adds its Rao-Blackwellised sums to ``acc`` when ``accumulate``.

    ``span``: the global indices of the chains in ``x`` (None: they are all the chains).
    """
    span = whole_span(x.shape[1]) if span is None else span
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
        return sweep(plan, rows, x, sweep_words(seed, counter), acc, temperature=temperature, accumulate=accumulate,
                     span=span)
    sums = (zero_sums(plan, rows.table.shape[1]), jnp.zeros((), jnp.float32)) if accumulate else None

    def body(carry, i):
        x, sums = carry
        return _sweep(plan, rows, x, sweep_words(seed, counter + i), sums, temperature, span), None

    (x, sums), _ = jax.lax.scan(body, (x, sums), jnp.arange(n_sweeps, dtype=jnp.uint32))
    if accumulate:
        acc = to_accumulators(plan, sums, float(n_sweeps), acc)
    return x, acc


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


def gibbs_kernel(temperature: float = 1.0):
    """A blackjax-style ``(init, step)`` pair for plain sampling sweeps.

    ``init(plan, seed, num_chains) -> x``; ``step(plan, rows, x, seed, counter) -> x``
    advances every chain by one sweep (``seed``: uint32[2], ``counter``: sweep number).
    """

    def init(plan: SweepPlan, seed, num_chains: int):
        return random_states(plan, seed, num_chains)

    def step(plan: SweepPlan, rows: Rows, x, seed, counter):
        x, _ = sweep(plan, rows, x, sweep_words(seed, counter), None, temperature=temperature, accumulate=False)
        return x

    return init, step
