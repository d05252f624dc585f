"""Chromatic Gibbs kernels over node-major chain states.

Chain states are ``x: int32[V + 1, C]`` (variable-major, one column per chain; row
``V`` is the dummy variable, always 0). A colour class holds variables that share no
factor, so updating a whole class for all chains in one vectorised step is the same
as updating them one after another: a full sweep over the classes is an exact
sequential Gibbs sweep.

The sweep is ``lax.scan`` over colour classes, each padded to the same size (padding
entries are the dummy variable, whose base logits pin it to state 0). A class step
sums the conditional rows its variables' slots select, draws one uniform per site and
inverts the CDF, and (when asked) adds the conditional probabilities into the
Rao-Blackwellised moment and marginal accumulators.
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


class SweepPlan(NamedTuple):
    """Index maps of one graph for the sweep (device pytree, built once on the host)."""

    base_logits: jax.Array  # f32[S, V + 1]: 0 on real states, NEG on padding states
    colour_vars: jax.Array  # i32[n_colours, n_c]: variable row per class slot (dummy: padding)
    colour_live: jax.Array  # bool[n_colours]: class has a real variable
    slot_row: jax.Array  # i32[n_colours, n_c, D]: R row base of each factor slot (0: none)
    slot_o1: jax.Array  # i32[n_colours, n_c, D]: other scope variable weighted by S
    slot_o2: jax.Array  # i32[n_colours, n_c, D]: other scope variable weighted by 1
    pivot_local: jax.Array  # i32[n_colours, P]: class slot of each factor's pivot
    pivot_row: jax.Array  # i32[n_colours, P]: M row base (trash row: padding)
    pivot_o1: jax.Array  # i32[n_colours, P]
    pivot_o2: jax.Array  # i32[n_colours, P]


class Accumulators(NamedTuple):
    """Rao-Blackwellised sums over sweeps of chain averages (divide by ``sweeps``)."""

    moments: jax.Array  # f32[S, n_moment_rows]: pivot conditionals per moment row
    marginals: jax.Array  # f32[S, V + 1]: conditionals per variable
    changed: jax.Array  # f32[]: sites per chain whose state changed
    sweeps: jax.Array  # f32[]: sweeps accumulated


def zero_accumulators(shape: LayoutShape) -> Accumulators:
    S = shape.n_states
    return Accumulators(
        jnp.zeros((S, shape.n_moment_rows), jnp.float32),
        jnp.zeros((S, shape.n_vars_padded + 1), jnp.float32),
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


def _slot_entries(layout: TableLayout):
    """Per variable: its slots (R row base, o1, o2); per pivot variable: its moment rows."""
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
                slots.setdefault(var, []).append((int(b.row_base[i, j]), o1, o2))
                if j == 0:
                    pivots.setdefault(var, []).append((int(b.moment_base[i]), o1, o2))
    return slots, pivots


def build_plan(graph: FactorGraph, layout: TableLayout, pad: bool = True) -> HostPlan:
    """Colour the graph and build the padded per-class index maps."""
    grow = bucket if pad else (lambda n: max(int(n), 1))
    S, dummy = layout.n_states, layout.dummy
    colours = greedy_colouring(graph)
    n_colours = int(colours.max()) + 1 if graph.n_vars else 1
    members = [np.nonzero(colours == c)[0] for c in range(n_colours)]
    slots, pivots = _slot_entries(layout)
    n_c = grow(max(len(m) for m in members))
    D = grow(max([len(s) for s in slots.values()] + [1]))
    P = grow(max([sum(len(pivots.get(v, [])) for v in m) for m in members] + [1]))
    n_col = grow(n_colours)

    colour_vars = np.full((n_col, n_c), dummy, np.int32)
    slot_row = np.zeros((n_col, n_c, D), np.int32)
    slot_o1 = np.full((n_col, n_c, D), dummy, np.int32)
    slot_o2 = np.full((n_col, n_c, D), dummy, np.int32)
    pivot_local = np.zeros((n_col, P), np.int32)
    pivot_row = np.full((n_col, P), layout.trash_row, np.int32)
    pivot_o1 = np.full((n_col, P), dummy, np.int32)
    pivot_o2 = np.full((n_col, P), dummy, np.int32)
    for c, vars_c in enumerate(members):
        p = 0
        for local, var in enumerate(vars_c):
            colour_vars[c, local] = var
            for d, (row, o1, o2) in enumerate(slots.get(int(var), [])):
                slot_row[c, local, d], slot_o1[c, local, d], slot_o2[c, local, d] = row, o1, o2
            for row, o1, o2 in pivots.get(int(var), []):
                pivot_local[c, p], pivot_row[c, p], pivot_o1[c, p], pivot_o2[c, p] = local, row, o1, o2
                p += 1
    sizes = np.ones(layout.n_vars_padded + 1, np.int64)
    sizes[: graph.n_vars] = graph.sizes
    base_logits = np.where(np.arange(S)[:, None] < sizes[None, :], 0.0, NEG).astype(np.float32)
    colour_live = np.arange(n_col) < n_colours
    arrays = dict(
        base_logits=base_logits,
        colour_vars=colour_vars,
        colour_live=colour_live,
        slot_row=slot_row,
        slot_o1=slot_o1,
        slot_o2=slot_o2,
        pivot_local=pivot_local,
        pivot_row=pivot_row,
        pivot_o1=pivot_o1,
        pivot_o2=pivot_o2,
    )
    return HostPlan(colours=colours, arrays=arrays)


# -- random numbers ---------------------------------------------------------------
# A counter-based hash: one uniform per site at a few integer ops, far cheaper on CPU
# than threefry, and keyed per sweep from a jax PRNG key so runs are reproducible.


def _fmix32(h):
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x7FEB352D)
    h = h ^ (h >> 15)
    h = h * jnp.uint32(0x846CA68B)
    return h ^ (h >> 16)


def site_uniforms(words, counter_offset, shape):
    """Uniforms in [0, 1) for ``shape`` sites, keyed by two uint32 ``words``."""
    counter = jax.lax.iota(jnp.uint32, int(np.prod(shape))).reshape(shape) + counter_offset
    h = _fmix32(_fmix32(counter ^ words[0]) + words[1])
    return (h >> 8).astype(jnp.float32) * jnp.float32(1.0 / (1 << 24))


# -- one colour class -----------------------------------------------------------------


def class_logits(plan_c, rows_t, x):
    """Conditional logits ``[S, n_c, C]`` of one colour class given the chains ``x``."""
    vars_c, slot_row, slot_o1, slot_o2 = plan_c
    logits = rows_t.base[:, vars_c][:, :, None]
    S = rows_t.table.shape[0]
    for d in range(slot_row.shape[1]):  # static unroll over the padded degree
        row = slot_row[:, d, None] + x[slot_o1[:, d]] * S + x[slot_o2[:, d]]
        logits = logits + rows_t.table[:, row]
    return logits


def sample_states(logits, u, temperature):
    """Inverse-CDF draw per site; returns (states int32[n_c, C], probabilities [S, n_c, C])."""
    S = logits.shape[0]
    if temperature != 1.0:
        logits = logits / temperature
    if S == 2:
        # Binary: the conditional is a logistic in the logit difference.
        p1 = jax.nn.sigmoid(logits[1] - logits[0])
        return (u < p1).astype(jnp.int32), jnp.stack([1.0 - p1, p1])
    top = jnp.max(logits, axis=0)
    weights = jnp.exp(logits - top)
    total = jnp.sum(weights, axis=0)
    threshold = u * total
    cumulative = jnp.zeros_like(total)
    states = jnp.zeros(total.shape, jnp.int32)
    for s in range(S - 1):  # static unroll: a running sum beats cumsum's reduce_window
        cumulative = cumulative + weights[s]
        states = states + (cumulative < threshold)
    return states, weights / total


class Rows(NamedTuple):
    """What a sweep reads: conditional rows ``[S, n_rows]`` and base logits ``[S, V + 1]``."""

    table: jax.Array
    base: jax.Array


def make_rows(plan: SweepPlan, rows_t) -> Rows:
    return Rows(rows_t, plan.base_logits)


def class_step(plan: SweepPlan, rows: Rows, x, words, colour, acc, temperature, accumulate):
    """Update colour class ``colour`` in every chain (and accumulate moments if asked)."""
    vars_c = plan.colour_vars[colour]
    plan_c = (vars_c, plan.slot_row[colour], plan.slot_o1[colour], plan.slot_o2[colour])
    logits = class_logits(plan_c, rows, x)
    n_c, C = logits.shape[1], logits.shape[2]
    u = site_uniforms(words, (colour * (n_c * C)).astype(jnp.uint32), (n_c, C))
    states, probs = sample_states(logits, u, temperature)
    if accumulate:
        pivot_probs = probs[:, plan.pivot_local[colour]]  # [S, P, C]
        S = probs.shape[0]
        row = plan.pivot_row[colour][:, None] + x[plan.pivot_o1[colour]] * S + x[plan.pivot_o2[colour]]
        acc = acc._replace(
            moments=acc.moments.at[:, row].add(pivot_probs, mode="promise_in_bounds"),
            marginals=acc.marginals.at[:, vars_c].add(probs.sum(axis=2)),
            changed=acc.changed + jnp.sum(states != x[vars_c]),
        )
    x = x.at[vars_c].set(states)
    return x, acc


def sweep(plan: SweepPlan, rows: Rows, x, key, acc, *, temperature=1.0, accumulate=True):
    """One full chromatic sweep (scan over colour classes)."""
    words = jax.random.bits(key, (2,), jnp.uint32)
    n_col = plan.colour_vars.shape[0]

    def body(carry, colour):
        x, acc = carry

        def step(operand):
            x, acc = operand
            return class_step(plan, rows, x, words, colour, acc, temperature, accumulate)

        x, acc = jax.lax.cond(plan.colour_live[colour], step, lambda operand: operand, (x, acc))
        return (x, acc), None

    # Sum this sweep into fresh buffers, then add the chain average: float32 sums over
    # many sweeps of thousands of chains would otherwise lose about 1e-3 of relative precision.
    local = None if acc is None else jax.tree.map(jnp.zeros_like, acc)
    (x, local), _ = jax.lax.scan(body, (x, local), jnp.arange(n_col))
    if accumulate:
        scale = 1.0 / x.shape[1]
        acc = Accumulators(
            acc.moments + local.moments * scale,
            acc.marginals + local.marginals * scale,
            acc.changed + local.changed * scale,
            acc.sweeps + 1.0,
        )
    return x, acc


def run_sweeps(plan: SweepPlan, rows: Rows, x, key, acc, n_sweeps: int, *, temperature=1.0, accumulate=True):
    """``n_sweeps`` sweeps under ``lax.scan``."""

    def body(carry, k):
        x, acc = carry
        return sweep(plan, rows, x, k, acc, temperature=temperature, accumulate=accumulate), None

    (x, acc), _ = jax.lax.scan(body, (x, acc), jax.random.split(key, n_sweeps))
    return x, acc


def move_rate(plan: SweepPlan, acc: Accumulators) -> jax.Array:
    """Fraction of site updates that changed the state (Gibbs always accepts; this is its mixing gauge)."""
    dummy = plan.base_logits.shape[1] - 1
    n_sites = jnp.maximum(jnp.sum(plan.colour_vars != dummy), 1)
    return acc.changed / jnp.maximum(acc.sweeps, 1.0) / n_sites


def random_states(plan: SweepPlan, key, num_chains: int):
    """Chains drawn uniformly over each variable's states (the λ = 0 model, exactly)."""
    valid = plan.base_logits > NEG / 2  # [S, V + 1]
    sizes = jnp.sum(valid, axis=0)
    u = jax.random.uniform(key, (plan.base_logits.shape[1], num_chains))
    x = jnp.minimum((u * sizes[:, None]).astype(jnp.int32), sizes[:, None] - 1)
    return x.at[-1].set(0)


def gibbs_kernel(temperature: float = 1.0):
    """A blackjax-style ``(init, step)`` pair for plain sampling sweeps."""

    def init(plan: SweepPlan, key, num_chains: int):
        return random_states(plan, key, num_chains)

    def step(plan: SweepPlan, rows: Rows, x, key):
        x, _ = sweep(plan, rows, x, key, None, temperature=temperature, accumulate=False)
        return x

    return init, step
