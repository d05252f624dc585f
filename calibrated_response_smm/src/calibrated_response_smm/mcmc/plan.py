"""The sweep plan: a graph's colouring, stages and blocks, built once on the host.

Variables are grouped into *stages* by their (padded) numbers of pairwise and
triple-wise factor slots and by their state width ``w`` (2 for a binary variable,
else the layout's ``S``), so a variable with two neighbours does not pay for the
largest degree in the graph, and a binary variable beside 21-state ones draws from
two logits, not 21. A stage is a list of blocks of ``b`` same-coloured variables, in
colour order (a colour class holds variables that share no factor). Padding entries
are the dummy variable, whose base logits pin it to state 0.

Rao-Blackwellised moments: a factor's pivot adds its conditional probabilities to
the table row its other variables' states select. A triple's pivot is its first
scope variable; pairs are oriented so that no variable pivots more than half its
pairs (rounded up), since a block pays for its largest pivot count in every slot.
The plan also maps the per-block sums of the sweep (:mod:`.sweep`) to the
moment-row layout.

:func:`build_plan` returns a :class:`HostPlan` (numpy, vectorised); its
:meth:`HostPlan.device` is the :class:`SweepPlan` pytree the sweep reads.
"""

from __future__ import annotations

from typing import NamedTuple

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from ..features import TableLayout, bucket
from ..graph import FactorGraph, greedy_colouring
from .blocks import BlockPlan, build_block_plan, device_block_plan

NEG = -1e9  # logit of a padding state: exp underflows to exactly 0
BLOCK_FLOATS = 1 << 16  # logits per block (sites x states): a block's arrays stay in L2 cache
BINARY_BLOCK_SITES = 1 << 15  # sites per block of the binary kernel (a few arrays of [b, C])
# Graphs at least this large get one stage per degree bucket; smaller ones get a single
# stage (padding costs little there, and fewer shapes mean fewer compilations). At 1,000
# variables with a few high-degree hubs, one stage padded every variable to the largest
# degree: staging made the sweep 5.6 times faster there.
STAGED_MIN_VARS = 256
DEGREE_BUCKETS = (0, 1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64)
# A stage joins the next larger pairwise degree when the padded slots that adds cost at
# most this fraction of its width's slots: the sweep then has one stage (one compiled
# loop, one pass over the chains) less. On a 1,000-variable synthetic tree the few hubs
# of degree 5-10 made 6 of its 16 stages, and a third of its compile time.
MERGE_PADDING = 0.05


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
    pair_pivot: jax.Array  # bool[n_blocks, b, P2]: the slot is its pair's pivot (else its sums go to the trash block)
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
    blocks: BlockPlan | None = None  # block moves over pairwise scopes after each kernel step (see .blocks)


@attrs.frozen(eq=False)
class HostPlan:
    """The colouring and the padded index maps, kept on the host."""

    colours: np.ndarray  # colour per variable
    arrays: dict  # SweepPlan fields other than ``stages``
    stages: tuple  # one dict of Stage fields per stage
    n_sites: int  # real variables updated per sweep and chain
    blocks: dict | None = None  # the block moves' arrays (:func:`.blocks.build_block_plan`), or None

    def device(self) -> SweepPlan:
        """The plan as the device pytree the sweep reads."""
        stages = tuple(Stage(**{k: jnp.asarray(v) for k, v in s.items()}) for s in self.stages)
        arrays = {k: jnp.asarray(v) for k, v in self.arrays.items()}
        blocks = None if self.blocks is None else device_block_plan(self.blocks)
        return SweepPlan(n_sites=jnp.asarray(float(self.n_sites), jnp.float32), stages=stages, blocks=blocks,
                         **arrays)


# -- slots, stages and blocks (vectorised numpy) -----------------------------------------


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
        return merge_small_stages(np.stack([_round_degree(d2), _round_degree(d3), widths], axis=1))
    top = [bucket(int(d.max())) if d.size and d.max() else 0 for d in (d2, d3)]
    top.append(int(widths.max()) if n_vars else 2)
    return np.tile(np.array(top, np.int64), (n_vars, 1))


def merge_small_stages(keys: np.ndarray) -> np.ndarray:
    """``keys`` with small stages moved to the next larger ``D2`` (:data:`MERGE_PADDING`).

    Only stages of the same triple slots and width merge. The cheapest merge (fewest
    padded slots) goes first, while the padding of all merges stays within budget.
    """
    keys = keys.copy()
    for d3, w in np.unique(keys[:, 1:], axis=0):
        group = (keys[:, 1] == d3) & (keys[:, 2] == w)
        budget = MERGE_PADDING * float(np.sum(keys[group, 0] + d3))
        while True:
            degrees, counts = np.unique(keys[group, 0], return_counts=True)
            if degrees.size < 2:
                break
            padding = counts[:-1] * np.diff(degrees)
            cheapest = int(np.argmin(padding))
            if padding[cheapest] > budget:
                break
            budget -= float(padding[cheapest])
            keys[group & (keys[:, 0] == degrees[cheapest]), 0] = degrees[cheapest + 1]
    return keys


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
        pair_pivot=pair_moment != trash,
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


def build_plan(graph: FactorGraph, layout: TableLayout, num_chains: int, pad: bool = True,
               block_moves: bool = True) -> HostPlan:
    """Colour the graph and build the staged, blocked index maps for ``num_chains`` chains.

    ``block_moves``: add block moves over the pairwise scopes (:mod:`.blocks`) where
    the graph is small enough for them.
    """
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
    blocks = build_block_plan(graph, layout) if block_moves else None
    return HostPlan(colours=colours, arrays=arrays, stages=tuple(stages), n_sites=n, blocks=blocks)

