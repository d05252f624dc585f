"""Host-side factor graph: variables, factors over small scopes, and their adjacency."""

from __future__ import annotations

from typing import Literal

import attrs
import numpy as np

VariableKind = Literal["categorical", "bounded_continuous"]


@attrs.frozen
class SMMVariable:
    """One discrete variable of the model.

    A ``categorical`` variable has ``num_states`` states; a ``bounded_continuous``
    one on ``[low, high]`` has ``num_bins`` equal bins, sampled as a bin and then a
    value uniform inside it.
    """

    name: str
    kind: VariableKind = attrs.field(validator=attrs.validators.in_(("categorical", "bounded_continuous")))
    num_states: int = 0
    low: float = 0.0
    high: float = 1.0
    num_bins: int = 0

    def __attrs_post_init__(self):
        size = self.size
        if size < 1:
            raise ValueError(f"variable {self.name!r}: needs at least one state, got {size}")
        if self.kind == "bounded_continuous" and not self.low < self.high:
            raise ValueError(f"variable {self.name!r}: needs low < high, got [{self.low}, {self.high}]")

    @classmethod
    def categorical(cls, name: str, num_states: int) -> SMMVariable:
        return cls(name=name, kind="categorical", num_states=int(num_states))

    @classmethod
    def bounded_continuous(cls, name: str, low: float, high: float, num_bins: int) -> SMMVariable:
        return cls(name=name, kind="bounded_continuous", low=float(low), high=float(high), num_bins=int(num_bins))

    @property
    def size(self) -> int:
        """Number of discrete states (bins for a continuous variable)."""
        return self.num_states if self.kind == "categorical" else self.num_bins

    @property
    def bin_edges(self) -> np.ndarray:
        if self.kind == "categorical":
            return np.arange(self.size + 1, dtype=np.float64) - 0.5
        return np.linspace(self.low, self.high, self.size + 1)


def _table(value) -> np.ndarray:
    array = np.array(value, dtype=np.float64)
    array.setflags(write=False)
    return array


@attrs.frozen(eq=False)
class Factor:
    """A log-potential table ``parameters`` over the variables ``var_ids`` (ascending)."""

    id: int
    var_ids: tuple[int, ...] = attrs.field(converter=tuple)
    table_shape: tuple[int, ...] = attrs.field(converter=tuple)
    parameters: np.ndarray = attrs.field(converter=_table)

    @var_ids.validator
    def _check_vars(self, attribute, value):
        if not 1 <= len(value) <= 3 or list(value) != sorted(set(value)):
            raise ValueError(f"factor {self.id}: var_ids {value} must be 1 to 3 distinct ascending indices")

    @parameters.validator
    def _check_parameters(self, attribute, value):
        if value.shape != self.table_shape:
            raise ValueError(f"factor {self.id}: parameters have shape {value.shape}, table_shape is {self.table_shape}")

    @property
    def arity(self) -> int:
        return len(self.var_ids)

    def with_parameters(self, parameters) -> Factor:
        return attrs.evolve(self, parameters=parameters)


@attrs.frozen(eq=False)
class FactorGraph:
    """Variables and factors; ``factors[i].id == i`` and scopes use variable positions."""

    variables: tuple[SMMVariable, ...] = attrs.field(converter=tuple)
    factors: tuple[Factor, ...] = attrs.field(converter=tuple)

    @factors.validator
    def _check_factors(self, attribute, value):
        sizes = [v.size for v in self.variables]
        for index, factor in enumerate(value):
            if factor.id != index:
                raise ValueError(f"factor at position {index} has id {factor.id}")
            if factor.var_ids[-1] >= len(sizes):
                raise ValueError(f"factor {factor.id}: variable index {factor.var_ids[-1]} out of range")
            expected = tuple(sizes[i] for i in factor.var_ids)
            if factor.table_shape != expected:
                raise ValueError(f"factor {factor.id}: table_shape {factor.table_shape}, variables give {expected}")

    @classmethod
    def from_scopes(cls, variables, scopes, tables=None) -> FactorGraph:
        """Build a graph with one factor per scope (zero tables unless given)."""
        sizes = [v.size for v in variables]
        factors = []
        for index, scope in enumerate(scopes):
            shape = tuple(sizes[i] for i in scope)
            table = np.zeros(shape) if tables is None else tables[index]
            factors.append(Factor(id=index, var_ids=tuple(scope), table_shape=shape, parameters=table))
        return cls(variables=variables, factors=factors)

    @property
    def n_vars(self) -> int:
        return len(self.variables)

    @property
    def sizes(self) -> list[int]:
        return [v.size for v in self.variables]

    @property
    def factor_to_vars(self) -> list[tuple[int, ...]]:
        return [f.var_ids for f in self.factors]

    @property
    def var_to_factors(self) -> list[tuple[int, ...]]:
        adjacency: list[list[int]] = [[] for _ in self.variables]
        for factor in self.factors:
            for var in factor.var_ids:
                adjacency[var].append(factor.id)
        return [tuple(a) for a in adjacency]

    def with_tables(self, tables) -> FactorGraph:
        """A copy whose factor parameters are ``tables`` (one per factor)."""
        return attrs.evolve(self, factors=[f.with_parameters(t) for f, t in zip(self.factors, tables)])

    def index_of(self, name: str) -> int:
        for index, variable in enumerate(self.variables):
            if variable.name == name:
                return index
        raise ValueError(f"unknown variable {name!r}")


def interaction_edges(graph: FactorGraph) -> tuple[np.ndarray, np.ndarray]:
    """Directed edges ``(src, dst)`` between variables that share a factor (each pair both ways, once)."""
    n = graph.n_vars
    by_arity: dict[int, list] = {}
    for scope in graph.factor_to_vars:
        by_arity.setdefault(len(scope), []).append(scope)
    src, dst = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for arity, scopes in by_arity.items():
        scopes = np.asarray(scopes, np.int64).reshape(-1, arity)
        for i in range(arity):
            for j in range(arity):
                if i != j:
                    src.append(scopes[:, i])
                    dst.append(scopes[:, j])
    keys = np.unique(np.concatenate(src) * max(n, 1) + np.concatenate(dst))
    return keys // max(n, 1), keys % max(n, 1)


def greedy_colouring(graph: FactorGraph, seed: int = 0) -> np.ndarray:
    """Colour the interaction graph (variables sharing a factor differ in colour).

    Greedy colouring in largest-degree-first order (ties in a fixed random order), each
    variable taking the smallest colour its earlier neighbours leave free. It runs as
    Jones-Plassmann rounds: every variable whose earlier neighbours are all coloured
    is coloured at once, so a round is a few vectorised passes over the edges.
    """
    n = graph.n_vars
    src, dst = interaction_edges(graph)
    degree = np.bincount(src, minlength=n)
    tie = np.random.default_rng(seed).permutation(n)
    priority = degree.astype(np.int64) * max(n, 1) + tie  # distinct: a strict order
    earlier = priority[dst] > priority[src]  # dst comes before src in the greedy order
    colour = np.full(n, -1, dtype=np.int64)
    waiting = np.bincount(src[earlier], minlength=n)  # earlier neighbours not yet coloured
    ready = np.nonzero(waiting == 0)[0]
    e_src, e_dst = src[earlier], dst[earlier]
    order = np.argsort(e_dst, kind="stable")  # edges grouped by their earlier endpoint
    e_src, e_dst = e_src[order], e_dst[order]
    starts = np.searchsorted(e_dst, np.arange(n + 1))
    while ready.size:
        # smallest colour not taken by a ready variable's (already coloured) earlier neighbours
        position = np.full(n, -1)
        position[ready] = np.arange(ready.size)
        mine = position[e_src] >= 0
        top = int(colour.max()) + 2
        taken = np.zeros((ready.size, top), bool)
        taken[position[e_src[mine]], colour[e_dst[mine]]] = True
        colour[ready] = np.argmin(taken, axis=1)
        # the later neighbours of the newly coloured variables have one fewer to wait for
        counts = starts[ready + 1] - starts[ready]
        first = starts[ready] - np.concatenate([[0], np.cumsum(counts)[:-1]])
        edge_index = np.repeat(first, counts) + np.arange(counts.sum())
        later = e_src[edge_index]
        np.subtract.at(waiting, later, 1)
        candidates = np.unique(later)
        ready = candidates[(waiting[candidates] == 0) & (colour[candidates] < 0)]
    return colour
