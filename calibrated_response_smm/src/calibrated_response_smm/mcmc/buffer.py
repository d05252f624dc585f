"""Persistent chains with the seed's convenience API.

``PersistentBuffer`` holds the chain bins of a fixed graph between calls; training uses
the same pure functions (:mod:`.kernels`) inside its compiled loop.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ..features import build_layout, graph_tables
from ..graph import FactorGraph
from .hybrid import continuous_map, read_states
from .kernels import (
    SWEEP_COMPILER_OPTIONS,
    build_plan,
    gibbs_kernel,
    make_rows,
    random_states,
    run_sweeps,
    seed_words,
    sweep_words,
    zero_accumulators,
)


@functools.cache
def default_kernel():
    """The plain Gibbs ``(init, step)`` pair, built once.

    ``_advance`` takes the step function as a static argument, so it compiles once
    per distinct function object: a fresh ``gibbs_kernel()`` per call would compile
    the sweep again on every call. A caller's own kernel is likewise built once and reused.
    """
    return gibbs_kernel()


_random_states = jax.jit(random_states, static_argnums=2)
_make_rows = jax.jit(make_rows, static_argnums=1)


@functools.partial(jax.jit, static_argnums=(0, 5), compiler_options=SWEEP_COMPILER_OPTIONS)
def _advance(step, plan, rows, x, seed_counter, n_sweeps):
    seed, counter = seed_counter

    def body(x, i):
        return step(plan, rows, x, seed, counter + i), None

    x, _ = jax.lax.scan(body, x, jnp.arange(n_sweeps, dtype=jnp.uint32))
    return x


@functools.partial(jax.jit, static_argnums=(0, 4), compiler_options=SWEEP_COMPILER_OPTIONS)
def _marginals(shape, plan, rows, x, n_sweeps, seed, counter):
    x, acc = run_sweeps(plan, rows, x, seed, counter, zero_accumulators(shape), n_sweeps)
    return x, acc.marginals / acc.sweeps


class PersistentBuffer:
    """Chains of one graph that persist across sampling calls."""

    def __init__(self, graph: FactorGraph, x, seed, layout, plan):
        self.graph = graph
        self.x = x
        self.seed = seed
        self.counter = 0
        self._layout = layout
        self._plan = plan
        self._rows = None
        self._tables_of = None

    @classmethod
    def initialize(cls, graph: FactorGraph, num_chains: int, rng=0) -> PersistentBuffer:
        """Chains drawn uniformly over each variable's states."""
        layout = build_layout(graph)
        plan = build_plan(graph, layout, num_chains).device()
        seed = jnp.asarray(seed_words(int(rng)))
        return cls(graph, _random_states(plan, seed, num_chains), seed, layout, plan)

    def _rows_for(self, graph: FactorGraph):
        if self._tables_of is not graph:  # tables change only when the graph object does
            theta = tuple(jnp.asarray(t) for t in graph_tables(self._layout, graph))
            self._rows = _make_rows(self._plan, self._layout.shape, theta)
            self._tables_of = graph
        return self._rows

    def sample_step(self, graph: FactorGraph | None = None, kernel=None, n_sweeps: int = 1, rng=None):
        """Advance every chain by ``n_sweeps`` sweeps of ``kernel`` (default: Gibbs) at ``graph``'s tables.

        ``kernel`` is an ``(init, step)`` pair such as ``gibbs_kernel(temperature)``;
        build it once and pass the same pair each call (each new one compiles anew).
        """
        graph = self.graph if graph is None else graph
        if rng is not None:
            self.seed = jnp.asarray(seed_words(int(rng)))
        _, step = kernel or default_kernel()
        self.x = _advance(step, self._plan, self._rows_for(graph), self.x, (self.seed, jnp.uint32(self.counter)), n_sweeps)
        self.counter += n_sweeps
        return self

    def get_states(self) -> dict:
        """Chain-major ``{"cat": int32[C, n_cat], "cont": float32[C, n_cont]}`` (values uniform in bins)."""
        states = read_states(continuous_map(self.graph), self.x, sweep_words(self.seed, jnp.uint32(self.counter) + 0x10000))
        return {k: np.asarray(v) for k, v in states.items()}

    def marginals(self, n_sweeps: int = 50, graph: FactorGraph | None = None) -> list[np.ndarray]:
        """Rao-Blackwellised marginals per variable over the next ``n_sweeps`` sweeps."""
        graph = self.graph if graph is None else graph
        self.x, marg = _marginals(
            self._layout.shape, self._plan, self._rows_for(graph), self.x, n_sweeps, self.seed, jnp.uint32(self.counter)
        )
        self.counter += n_sweeps
        marg = np.asarray(marg, np.float64)
        return [marg[i, :size] / marg[i, :size].sum() for i, size in enumerate(graph.sizes)]
