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


def greedy_colouring(graph: FactorGraph) -> np.ndarray:
    """Colour the interaction graph (variables sharing a factor differ in colour).

    Largest-degree-first, each variable taking the least-used admissible colour so
    that colour classes come out balanced (they are padded to the largest class).
    """
    n = graph.n_vars
    neighbours: list[set[int]] = [set() for _ in range(n)]
    for scope in graph.factor_to_vars:
        for var in scope:
            neighbours[var].update(scope)
    for var in range(n):
        neighbours[var].discard(var)
    order = sorted(range(n), key=lambda v: (-len(neighbours[v]), v))
    colour = np.full(n, -1, dtype=np.int64)
    counts: list[int] = []
    for var in order:
        taken = {colour[u] for u in neighbours[var] if colour[u] >= 0}
        free = [c for c in range(len(counts)) if c not in taken]
        if free:
            pick = min(free, key=lambda c: (counts[c], c))
        else:
            pick = len(counts)
            counts.append(0)
        colour[var] = pick
        counts[pick] += 1
    return colour
