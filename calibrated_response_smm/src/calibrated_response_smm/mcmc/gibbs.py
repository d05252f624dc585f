"""The chromatic Gibbs sampler as a kernel: an ``init`` / ``step`` pair of pure functions.

``build_kernel`` closes over the static settings (sweep plan, sweeps per step,
temperature, whether the Rao-Blackwellised sums are formed, how many devices the
chains are split across) and returns a :class:`GibbsKernel`:

- ``init(seed, num_chains) -> GibbsState``: chains drawn uniformly over each
  variable's states (the zero-multiplier model, exactly);
- ``step(state, rows) -> (GibbsState, Accumulators)``: ``n_sweeps`` sweeps at the
  conditional rows ``rows``, with their Rao-Blackwellised sums averaged over every
  chain (zeros when not accumulating).

Nothing is jitted inside: the caller jits the outermost loop (the training chunk,
the final estimate). With ``devices > 1`` the one-device kernel is wrapped by
:func:`.sharding.shard_kernel`, which runs its step on each device's share of the
chains; each chain's random stream is keyed by its global index, so the draws do not
depend on the split.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..features import LayoutShape
from . import sharding
from .plan import SweepPlan
from .stream import ChainSpan
from .sweep import Accumulators, Rows, random_states, run_sweeps, zero_accumulators


class GibbsState(NamedTuple):
    """Persistent chains and their position in the random stream (device pytree)."""

    x: jax.Array  # i32[V + 1, C]: chain states, variable-major (row V: the dummy)
    seed: jax.Array  # u32[2]: the stream's key
    counter: jax.Array  # u32[]: sweeps done (the next sweep's number in the stream)


class GibbsKernel(NamedTuple):
    """``init(seed, num_chains)`` and ``step(state, rows)``; a one-device step also takes the chains' ``span``."""

    init: Callable[..., GibbsState]
    step: Callable[..., tuple[GibbsState, Accumulators]]


def build_kernel(
    plan: SweepPlan,
    shape: LayoutShape,
    n_sweeps: int = 1,
    *,
    temperature: float = 1.0,
    accumulate: bool = True,
    devices: int = 1,
) -> GibbsKernel:
    """The Gibbs kernel of ``plan`` with its static settings closed over."""

    def init(seed, num_chains: int) -> GibbsState:
        x = random_states(plan, seed, num_chains)
        return GibbsState(x, jnp.asarray(seed, jnp.uint32), jnp.zeros((), jnp.uint32))

    def step(state: GibbsState, rows: Rows, span: ChainSpan | None = None) -> tuple[GibbsState, Accumulators]:
        """``span``: the global indices of the chains in ``state.x`` (None: they are all the chains)."""
        x, acc = run_sweeps(
            plan, rows, state.x, state.seed, state.counter, zero_accumulators(shape), n_sweeps,
            temperature=temperature, accumulate=accumulate, span=span,
        )
        return GibbsState(x, state.seed, state.counter + jnp.uint32(n_sweeps)), acc

    kernel = GibbsKernel(init, step)
    return kernel if devices == 1 else sharding.shard_kernel(kernel, devices, average=accumulate)
