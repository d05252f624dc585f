"""Persistent chains with the seed's convenience API.

``PersistentBuffer`` holds the chain bins of a fixed graph between calls and steps
them with the Gibbs kernel of :mod:`.gibbs`, which training also uses inside its
compiled loop.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ..features import LayoutShape, build_layout, graph_tables
from ..graph import FactorGraph
from .gibbs import GibbsState, build_kernel
from .hybrid import continuous_map, read_states
from .plan import SweepPlan, build_plan
from .stream import seed_words, sweep_words
from .sweep import SWEEP_COMPILER_OPTIONS, Rows, make_rows

# Each compiled function takes the plan as an argument and builds its kernel inside, so
# buffers of graphs of the same shapes share one compilation.
_make_rows = jax.jit(make_rows, static_argnums=1)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _init(plan: SweepPlan, shape: LayoutShape, num_chains: int, seed) -> GibbsState:
    return build_kernel(plan, shape).init(seed, num_chains)


@functools.partial(jax.jit, static_argnums=(1, 4, 5), compiler_options=SWEEP_COMPILER_OPTIONS)
def _advance(plan: SweepPlan, shape: LayoutShape, rows: Rows, state: GibbsState, n_sweeps: int, temperature: float):
    kernel = build_kernel(plan, shape, n_sweeps, temperature=temperature, accumulate=False)
    return kernel.step(state, rows)[0]


@functools.partial(jax.jit, static_argnums=(1, 4), compiler_options=SWEEP_COMPILER_OPTIONS)
def _marginals(plan: SweepPlan, shape: LayoutShape, rows: Rows, state: GibbsState, n_sweeps: int):
    state, acc = build_kernel(plan, shape, n_sweeps).step(state, rows)
    return state, acc.marginals / acc.sweeps


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
        return cls(graph, _init(plan, layout.shape, num_chains, seed).x, seed, layout, plan)

    def _state(self) -> GibbsState:
        return GibbsState(self.x, self.seed, jnp.uint32(self.counter))

    def _rows_for(self, graph: FactorGraph):
        if self._tables_of is not graph:  # tables change only when the graph object does
            theta = tuple(jnp.asarray(t) for t in graph_tables(self._layout, graph))
            self._rows = _make_rows(self._plan, self._layout.shape, theta)
            self._tables_of = graph
        return self._rows

    def sample_step(self, graph: FactorGraph | None = None, n_sweeps: int = 1, rng=None, *, temperature: float = 1.0):
        """Advance every chain by ``n_sweeps`` Gibbs sweeps at ``graph``'s tables divided by ``temperature``.

        ``rng``: a new stream seed for these and later sweeps (None: keep the stream).
        """
        graph = self.graph if graph is None else graph
        if rng is not None:
            self.seed = jnp.asarray(seed_words(int(rng)))
        self.x = _advance(self._plan, self._layout.shape, self._rows_for(graph), self._state(), n_sweeps, temperature).x
        self.counter += n_sweeps
        return self

    def get_states(self) -> dict:
        """Chain-major ``{"cat": int32[C, n_cat], "cont": float32[C, n_cont]}`` (values uniform in bins)."""
        states = read_states(continuous_map(self.graph), self.x, sweep_words(self.seed, jnp.uint32(self.counter) + 0x10000))
        return {k: np.asarray(v) for k, v in states.items()}

    def marginals(self, n_sweeps: int = 50, graph: FactorGraph | None = None) -> list[np.ndarray]:
        """Rao-Blackwellised marginals per variable over the next ``n_sweeps`` sweeps."""
        graph = self.graph if graph is None else graph
        state, marg = _marginals(self._plan, self._layout.shape, self._rows_for(graph), self._state(), n_sweeps)
        self.x = state.x
        self.counter += n_sweeps
        marg = np.asarray(marg, np.float64)
        return [marg[i, :size] / marg[i, :size].sum() for i, size in enumerate(graph.sizes)]
