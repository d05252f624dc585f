"""Block moves: a Gibbs update of a pairwise factor's two variables at once.

Strongly conflicting estimates make large multipliers, and a pair table with a strong
interaction (``theta(a, b)`` far from ``f(a) + g(b)``) gives the pair's joint
conditional separated modes: single-site Gibbs leaves ``(a, b)`` for ``(a', b')`` only
through ``(a', b)`` or ``(a, b')``, and where both lie far below ``(a, b)`` it crosses
about once per ``exp(depth)`` sweeps (see :func:`couplings`). On stress problems whose exact
multipliers reach |lambda| 94 to 462, single-site chains at the exact multipliers
settled 0.03 to 0.44 away from the exact marginals from any start; with a block move
over every pair after each sweep they came within 0.008.

A block move draws both variables from their exact joint conditional given the rest
of the chain: the cells of the scope are enumerated by the scope estimator's plan
(:func:`..scope_moments.cell_logits`) and one is drawn per chain by inverse CDF from
one uniform of the counter-based stream. It leaves the model's distribution invariant, so the
Rao-Blackwellised sums of the sweeps around it stay unbiased.

A block moves only while its pair can hold a trap deeper than :data:`COUPLING` for
single-site moves (:func:`couplings`): a move enumerates up to ``S^2`` cells, about as
much work as ten single-site updates of both variables, so pairs that single-site Gibbs
crosses easily skip it (a ``lax.cond``). The bound is the worst case over the rest of
the chain: the depth of the pair's own tables alone (the rest left out) missed the
traps of the stress problems above, which the rest of their chains opened.
Graphs with more than :data:`MAX_BLOCKS` pairwise scopes get none (the stacked plans
grow with their number; such graphs are the sparse large ones the sampler is tuned for).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ..features import TableLayout
from ..scope_moments import PLAN_SIZES, ScopePlan, cell_logits, plan_sizes, scope_plan
from .stream import ChainSpan, chain_uniforms, sweep_words

#: A block moves while its pair can hold a trap deeper than this many nats: single-site
#: Gibbs leaves such a trap about once per ``e^COUPLING`` (55) sweeps or less often.
COUPLING = 4.0
#: Most pairwise scopes that get a block (the plans of all are stacked on the device).
MAX_BLOCKS = 256
#: The block draws use a stream of their own: the seed's words are salted with this.
BLOCK_SALT = np.array([0xB10C_4A11, 0x5CA7_7E12], np.uint32)


@functools.partial(jax.tree_util.register_dataclass,
                   data_fields=["plans", "vars", "first", "second", "real"], meta_fields=["n_states"])
@dataclasses.dataclass(frozen=True)
class BlockPlan:
    """Stacked scope plans of the blocks (device pytree; leading axis: block)."""

    plans: ScopePlan  # each field [P, ...]: one scope plan per block, padded alike
    vars: jax.Array  # i32[P, 2]: the block's variables
    first: jax.Array  # i32[P, N]: the first variable's state of each cell (padding: 0)
    second: jax.Array  # i32[P, N]
    real: jax.Array  # bool[P, N]: the cell is a real one (not padding)
    n_states: int


def pair_scopes(graph) -> list[tuple[int, int]]:
    """The distinct scopes of the graph's pairwise factors, in factor order."""
    seen: dict[tuple[int, int], None] = {}
    for factor in graph.factors:
        if len(factor.var_ids) == 2:
            seen.setdefault(tuple(int(v) for v in factor.var_ids), None)
    return list(seen)


def build_block_plan(graph, layout: TableLayout) -> dict | None:
    """The host arrays of the blocks of ``graph`` (None: no pairwise factor, or more than ``MAX_BLOCKS``)."""
    scopes = pair_scopes(graph)
    if not scopes or len(scopes) > MAX_BLOCKS:
        return None
    natural = [plan_sizes(scope_plan(graph, layout, [s], [k])) for k, s in enumerate(scopes)]
    common = {key: max(n[key] for n in natural) for key in PLAN_SIZES}
    n_cells = common["n_cells"]
    plans = [scope_plan(graph, layout, [s], [k], at_least=common) for k, s in enumerate(scopes)]
    values = np.zeros((len(scopes), n_cells, 2), np.int32)
    real = np.zeros((len(scopes), n_cells), bool)
    for k, (u, v) in enumerate(scopes):
        count = graph.sizes[u] * graph.sizes[v]
        values[k, :count] = np.stack(np.unravel_index(np.arange(count), (graph.sizes[u], graph.sizes[v])), axis=1)
        real[k, :count] = True
    arrays = {key: np.stack([p.arrays[key] for p in plans]) for key in plans[0].arrays}
    return dict(arrays=arrays, n_segments=plans[0].n_segments, n_groups=plans[0].n_groups, values=values,
                vars=np.array(scopes, np.int32), real=real, n_states=layout.n_states)


def device_block_plan(host: dict) -> BlockPlan:
    """The device pytree of :func:`build_block_plan`'s arrays."""
    plans = ScopePlan(**{k: jnp.asarray(v) for k, v in host["arrays"].items()}, n_segments=host["n_segments"],
                      n_groups=host["n_groups"])
    values = jnp.asarray(host["values"])
    return BlockPlan(plans, jnp.asarray(host["vars"]), values[..., 0], values[..., 1],
                     jnp.asarray(host["real"]), host["n_states"])


def couplings(blocks: BlockPlan, flat) -> jax.Array:
    """Each block's interaction span in nats, ``[P]``: the range of ``theta - row mean - column mean + mean``.

    ``theta`` sums the tables inside the pair's scope (its pairwise factors and the two
    unary ones). A single-site move changes one of the two states, so from a cell
    ``(a, b)`` the chain reaches the pair's best cell ``(a*, b*)`` through ``(a*, b)``
    or ``(a, b*)`` and leaves ``(a, b)`` about once per ``e^depth`` sweeps, ``depth``
    the drop to the better of those. The rest of the chain adds to the pair's main
    effects only (a factor on one of the two and other variables is a function of that
    one, given the rest), which move chain by chain and sweep by sweep; whatever they
    are, the depth is at most half the interaction's double difference
    ``I(a, b) + I(a*, b*) - I(a*, b) - I(a, b*)``, so at most this span. Two binary
    variables tied by ``+-J/4`` have span and worst depth ``J/2``: conditionals of 0.9
    against 0.1 (``J = 4.4``) make no trap, 0.999 against 0.001 (``J = 13.8``) can.
    """
    theta = jnp.sum(flat[blocks.plans.inner], axis=-1)  # [P, N]
    S = blocks.n_states
    weight = blocks.real.astype(theta.dtype)

    def mean_by(index):  # per block and state of one variable: the mean of theta over the other
        onehot = jax.nn.one_hot(index, S, dtype=theta.dtype) * weight[..., None]  # [P, N, S]
        sums = jnp.einsum("pn,pns->ps", theta, onehot)
        counts = jnp.maximum(onehot.sum(axis=1), 1.0)
        return jnp.take_along_axis(sums / counts, index, axis=1)

    mean = jnp.sum(theta * weight, axis=1, keepdims=True) / jnp.maximum(weight.sum(axis=1, keepdims=True), 1.0)
    interaction = theta - mean_by(blocks.first) - mean_by(blocks.second) + mean
    top = jnp.max(jnp.where(blocks.real, interaction, -jnp.inf), axis=1)
    bottom = jnp.min(jnp.where(blocks.real, interaction, jnp.inf), axis=1)
    return top - bottom


def block_moves(blocks: BlockPlan, flat, coupling, x, seed, counter, span: ChainSpan, temperature: float = 1.0):
    """One block move per block whose ``coupling`` (:func:`couplings`) exceeds :data:`COUPLING`, in block order.

    ``flat``: the flat tables (:func:`..scope_moments.flat_tables`); ``seed`` and
    ``counter`` key the draws (a stream apart from the sweeps'); ``span``: the global
    indices of the chains in ``x``, so a chain's draw does not depend on the device.
    """
    active = coupling > COUPLING * temperature
    words = sweep_words(jnp.asarray(seed, jnp.uint32) ^ jnp.asarray(BLOCK_SALT), counter)
    n_chains = x.shape[1]

    def move(x, block):
        index, plan, first, second, pair, real = block
        logits = jnp.where(real[:, None], cell_logits(plan, flat, x) / temperature, -jnp.inf)  # [N, C]
        weights = jnp.exp(logits - jnp.max(logits, axis=0))
        # inverse CDF, one uniform per chain: a log-depth prefix sum (XLA's cumsum is quadratic on CPU)
        cdf = jax.lax.associative_scan(jnp.add, weights, axis=0)
        u = chain_uniforms(words, index.astype(jnp.uint32)[None], span, n_chains)[0]
        cell = jnp.sum(cdf < u * cdf[-1], axis=0)  # [C]; u < 1, so at most the last real cell
        return x.at[pair].set(jnp.stack([first[cell], second[cell]]))

    def step(x, block):
        *inputs, moves = block
        return jax.lax.cond(moves, lambda x: move(x, inputs), lambda x: x, x), None

    index = jnp.arange(blocks.vars.shape[0])
    x, _ = jax.lax.scan(step, x, (index, blocks.plans, blocks.first, blocks.second, blocks.vars, blocks.real,
                                      active))
    return x
