"""Chromatic Gibbs kernels over node-major chain states.

Chain states are ``x: int32[V + 1, C]`` (variable-major, one column per chain; row
``V`` is the dummy variable, always 0). A colour class holds variables that share no
factor, so updating a whole class for all chains in one vectorised step is the same
as updating them one after another: a full sweep over the classes is an exact
sequential Gibbs sweep.

The sweep is ``lax.scan`` over colour classes; a class is cut into blocks of ``b``
variables (``b * C`` sites, sized so a block's logits stay in cache) and scanned over
its blocks. A block sums the conditional rows its variables' slots select (plus the
unary tables folded into the base logits), draws one uniform per site and inverts
the CDF, and (when asked) adds the conditional probabilities into the
Rao-Blackwellised moment and marginal accumulators. Padding entries are the dummy
variable, whose base logits pin it to state 0.
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
BLOCK_FLOATS = 1 << 16  # logits per block (sites x states): a block's arrays stay in L2 cache


class SweepPlan(NamedTuple):
    """Index maps of one graph for the sweep (device pytree, built once on the host)."""

    valid_logits: jax.Array  # f32[V + 1, S]: 0 on real states, NEG on padding states
    unary_scopes: jax.Array  # i32[F_1, 1]: variable of each unary factor (dummy: padding)
    block_vars: jax.Array  # i32[n_colours, n_blocks, b]: variable row per slot (dummy: padding)
    block_live: jax.Array  # bool[n_colours, n_blocks]: block has a real variable
    slot_row: jax.Array  # i32[n_colours, n_blocks, b, D]: R row base of each factor slot (0: none)
    slot_o1: jax.Array  # i32[n_colours, n_blocks, b, D]: other scope variable weighted by S
    slot_o2: jax.Array  # i32[n_colours, n_blocks, b, D]: other scope variable weighted by 1
    pivot_local: jax.Array  # i32[n_colours, n_blocks, P]: block slot of each factor's pivot
    pivot_row: jax.Array  # i32[n_colours, n_blocks, P]: M row base (trash row: padding)
    pivot_o1: jax.Array  # i32[n_colours, n_blocks, P]
    pivot_o2: jax.Array  # i32[n_colours, n_blocks, P]


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
    arrays: dict

    def device(self) -> SweepPlan:
        return SweepPlan(**{k: jnp.asarray(v) for k, v in self.arrays.items()})

    @property
    def n_sites(self) -> int:
        """Real variables updated per sweep and chain."""
        return int(np.sum(self.arrays["block_vars"] != self.arrays["valid_logits"].shape[0] - 1))


def _slot_entries(layout: TableLayout):
    """Per variable: its lookup slots (R row base, o1, o2) and its pivot moment rows."""
    dummy = layout.dummy
    slots: dict[int, list[tuple[int, int, int]]] = {}
    pivots: dict[int, list[tuple[int, int, int]]] = {}
    for b in layout.buckets:
        for i in range(b.size):
            if b.factor_ids[i] < 0:
                continue
            scope = [int(v) for v in b.scopes[i]]
            for j, var in enumerate(scope):
                others = scope[:j] + scope[j + 1 :]
                o1, o2 = ([dummy, dummy] + others)[-2:]
                if b.arity > 1:  # unary tables live in the base logits
                    slots.setdefault(var, []).append((int(b.row_base[i, j]), o1, o2))
                if j == 0:
                    pivots.setdefault(var, []).append((int(b.moment_base[i]), o1, o2))
    return slots, pivots


def build_plan(graph: FactorGraph, layout: TableLayout, num_chains: int, pad: bool = True) -> HostPlan:
    """Colour the graph and build the padded per-block index maps for ``num_chains`` chains."""
    grow = bucket if pad else (lambda n, minimum=1: max(int(n), 1))
    S, dummy = layout.n_states, layout.dummy
    colours = greedy_colouring(graph)
    n_colours = int(colours.max()) + 1 if graph.n_vars else 1
    members = [np.nonzero(colours == c)[0] for c in range(n_colours)]
    slots, pivots = _slot_entries(layout)
    largest = max(len(m) for m in members)
    block_sites = max(BLOCK_FLOATS // S, 1024)
    b = max(min(block_sites // max(num_chains, 1), largest), 1)
    b = 1 << (b.bit_length() - 1)  # a power of two no larger than the largest class
    n_blocks = grow(-(-largest // b))
    D = grow(max([len(s) for s in slots.values()] + [1]), 4)
    block_pivots = [
        sum(len(pivots.get(int(v), [])) for v in m[k * b : (k + 1) * b]) for m in members for k in range(-(-len(m) // b))
    ]
    P = grow(max(block_pivots + [1]), 8)
    n_col = grow(n_colours)

    block_vars = np.full((n_col, n_blocks, b), dummy, np.int32)
    slot_row = np.zeros((n_col, n_blocks, b, D), np.int32)
    slot_o1 = np.full((n_col, n_blocks, b, D), dummy, np.int32)
    slot_o2 = np.full((n_col, n_blocks, b, D), dummy, np.int32)
    pivot_local = np.zeros((n_col, n_blocks, P), np.int32)
    pivot_row = np.full((n_col, n_blocks, P), layout.trash_row, np.int32)
    pivot_o1 = np.full((n_col, n_blocks, P), dummy, np.int32)
    pivot_o2 = np.full((n_col, n_blocks, P), dummy, np.int32)
    for c, vars_c in enumerate(members):
        for position, var in enumerate(vars_c):
            k, local = divmod(position, b)
            block_vars[c, k, local] = var
            for d, entry in enumerate(slots.get(int(var), [])):
                slot_row[c, k, local, d], slot_o1[c, k, local, d], slot_o2[c, k, local, d] = entry
        for k in range(-(-len(vars_c) // b)):
            p = 0
            for local, var in enumerate(vars_c[k * b : (k + 1) * b]):
                for row, o1, o2 in pivots.get(int(var), []):
                    pivot_local[c, k, p], pivot_row[c, k, p], pivot_o1[c, k, p], pivot_o2[c, k, p] = local, row, o1, o2
                    p += 1
    sizes = np.ones(layout.n_vars_padded + 1, np.int64)
    sizes[: graph.n_vars] = graph.sizes
    valid_logits = np.where(np.arange(S)[None, :] < sizes[:, None], 0.0, NEG).astype(np.float32)
    arrays = dict(
        valid_logits=valid_logits,
        unary_scopes=layout.buckets[0].scopes.astype(np.int32),
        block_vars=block_vars,
        block_live=np.any(block_vars != dummy, axis=2),
        slot_row=slot_row,
        slot_o1=slot_o1,
        slot_o2=slot_o2,
        pivot_local=pivot_local,
        pivot_row=pivot_row,
        pivot_o1=pivot_o1,
        pivot_o2=pivot_o2,
    )
    return HostPlan(colours=colours, arrays=arrays)


def make_rows(plan: SweepPlan, shape: LayoutShape, theta) -> Rows:
    """Lookup rows and base logits (validity + unary tables) from bucket tables."""
    from ..features import tables_to_rows, unary_logits

    base = plan.valid_logits + unary_logits(shape, theta, plan.unary_scopes)
    return Rows(tables_to_rows(shape, theta), base)


# -- random numbers ---------------------------------------------------------------
# A counter-based hash: one uniform per site at a few integer ops, far cheaper on CPU
# than threefry, and keyed per sweep from a jax PRNG key so runs are reproducible.


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


def site_uniforms(words, counter_offset, shape):
    """Uniforms in [0, 1) for ``shape`` sites, keyed by two uint32 ``words``."""
    counter = jax.lax.iota(jnp.uint32, int(np.prod(shape))).reshape(shape) + counter_offset
    h = _fmix32(_fmix32(counter ^ words[0]) + words[1])
    return (h >> 8).astype(jnp.float32) * jnp.float32(1.0 / (1 << 24))


def seed_words(seed: int) -> np.ndarray:
    """The uint32[2] stream seed of an integer seed."""
    seed = int(seed) & 0xFFFFFFFFFFFFFFFF
    return np.array([seed & 0xFFFFFFFF, (seed >> 32) ^ 0x9E3779B9], dtype=np.uint32)


# -- one block of a colour class ------------------------------------------------------


def block_logits(rows: Rows, x, vars_b, slot_row, slot_o1, slot_o2):
    """Conditional logits ``[b, C, S]`` of one block given the chains ``x``."""
    S = rows.table.shape[1]
    logits = rows.base[vars_b][:, None, :]
    for d in range(slot_row.shape[1]):  # static unroll over the padded degree
        row = slot_row[:, d, None] + x[slot_o1[:, d]] * S + x[slot_o2[:, d]]
        logits = logits + rows.table.at[row].get(mode="promise_in_bounds")
    return logits


def sample_states(logits, u, temperature):
    """Inverse-CDF draw per site from logits ``[..., S]``.

    Returns (states int32[...], probabilities [..., S]).
    """
    S = logits.shape[-1]
    if temperature != 1.0:
        logits = logits / temperature
    if S == 2:
        # Binary: the conditional is a logistic in the logit difference.
        p1 = jax.nn.sigmoid(logits[..., 1] - logits[..., 0])
        return (u < p1).astype(jnp.int32), jnp.stack([1.0 - p1, p1], axis=-1)
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


def block_step(plan: SweepPlan, rows: Rows, x, words, colour, block, acc, temperature, accumulate):
    """New states ``[b, C]`` of one block (x is read, not written) and updated sums."""
    vars_b = plan.block_vars[colour, block]
    logits = block_logits(
        rows, x, vars_b, plan.slot_row[colour, block], plan.slot_o1[colour, block], plan.slot_o2[colour, block]
    )
    b, C, S = logits.shape
    n_blocks = plan.block_vars.shape[1]
    offset = ((colour * n_blocks + block) * (b * C)).astype(jnp.uint32)
    states, probs = sample_states(logits, site_uniforms(words, offset, (b, C)), temperature)
    if accumulate:
        pivot_probs = probs[plan.pivot_local[colour, block]]  # [P, C, S]
        row = plan.pivot_row[colour, block][:, None] + x[plan.pivot_o1[colour, block]] * S + x[plan.pivot_o2[colour, block]]
        acc = acc._replace(
            moments=acc.moments.at[row].add(pivot_probs, mode="promise_in_bounds"),
            marginals=acc.marginals.at[vars_b].add(probs.sum(axis=1)),
            changed=acc.changed + jnp.sum(states != x[vars_b]),
        )
    return states, acc


def class_step(plan: SweepPlan, rows: Rows, x, words, colour, acc, temperature, accumulate):
    """Update colour class ``colour`` in every chain, block by block."""
    n_blocks, b = plan.block_vars.shape[1:]
    C = x.shape[1]

    def body(acc, block):
        def live(acc):
            states, acc = block_step(plan, rows, x, words, colour, block, acc, temperature, accumulate)
            return acc, states

        def idle(acc):
            return acc, jnp.zeros((b, C), jnp.int32)

        return jax.lax.cond(plan.block_live[colour, block], live, idle, acc)

    acc, states = jax.lax.scan(body, acc, jnp.arange(n_blocks))
    return x.at[plan.block_vars[colour].reshape(-1)].set(states.reshape(-1, C)), acc


def sweep(plan: SweepPlan, rows: Rows, x, words, acc, *, temperature=1.0, accumulate=True):
    """One full chromatic sweep (scan over colour classes)."""
    n_col = plan.block_vars.shape[0]

    def body(carry, colour):
        x, acc = carry
        return class_step(plan, rows, x, words, colour, acc, temperature, accumulate), None

    # Sum this sweep into fresh buffers, then add the chain average: float32 sums over
    # many sweeps of thousands of chains would otherwise lose about 1e-3 of relative precision.
    local = None if acc is None else jax.tree.map(jnp.zeros_like, acc)
    (x, local), _ = jax.lax.scan(body, (x, local), jnp.arange(n_col))
    x = x.at[-1].set(0)  # padding slots wrote the dummy row
    if accumulate:
        scale = 1.0 / x.shape[1]
        acc = Accumulators(
            acc.moments + local.moments * scale,
            acc.marginals + local.marginals * scale,
            acc.changed + local.changed * scale,
            acc.sweeps + 1.0,
        )
    return x, acc


def run_sweeps(plan: SweepPlan, rows: Rows, x, seed, counter, acc, n_sweeps: int, *, temperature=1.0, accumulate=True):
    """Sweeps ``counter .. counter + n_sweeps - 1`` of the stream ``seed`` under ``lax.scan``."""

    def body(carry, i):
        x, acc = carry
        words = sweep_words(seed, counter + i)
        return sweep(plan, rows, x, words, acc, temperature=temperature, accumulate=accumulate), None

    (x, acc), _ = jax.lax.scan(body, (x, acc), jnp.arange(n_sweeps, dtype=jnp.uint32))
    return x, acc


def move_rate(plan: SweepPlan, acc: Accumulators) -> jax.Array:
    """Fraction of site updates that changed the state (Gibbs always accepts; this is its mixing gauge)."""
    n_sites = jnp.sum(plan.block_vars != plan.valid_logits.shape[0] - 1)
    return acc.changed / jnp.maximum(acc.sweeps, 1.0) / jnp.maximum(n_sites, 1)


def random_states(plan: SweepPlan, seed, num_chains: int):
    """Chains drawn uniformly over each variable's states (the λ = 0 model, exactly)."""
    sizes = jnp.sum(plan.valid_logits > NEG / 2, axis=1)  # [V + 1]
    u = site_uniforms(sweep_words(seed, jnp.uint32(0xFFFFFFFF)), jnp.uint32(0), (sizes.shape[0], num_chains))
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
