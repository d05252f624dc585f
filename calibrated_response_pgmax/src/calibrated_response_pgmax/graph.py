"""The PGMax factor graph of a :class:`~calibrated_response_pgmax.layout.FactorLayout`, built once.

Factors with the same state shape share one ``EnumFactorGroup`` (PGMax needs a
common configuration list per group). PGMax orders log potentials its own way;
:func:`build_graph` learns that order by building the groups with each
configuration's layout index as its log potential and reading back the flat
array, so no assumption about PGMax internals beyond the public state is made.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from calibrated_response_pgmax._compat import import_pgmax
from calibrated_response_pgmax.layout import FactorLayout


def enumerate_configs(shape: tuple[int, ...]) -> np.ndarray:
    """All configurations of a scope with ``shape`` states, C order, shape ``[prod(shape), len(shape)]``."""
    return np.indices(shape).reshape(len(shape), -1).T.astype(np.int64)


@attrs.frozen(eq=False)
class PgmaxGraph:
    """PGMax objects and the index maps between PGMax's flat order and layout order.

    ``layout_of_flat[j]`` is the layout configuration at PGMax's flat
    log-potential position ``j``; ``flat_of_layout`` is its inverse.
    ``config_of_edge_row``/``edge_state_of_row`` list, for every (configuration,
    scope variable) pair, the flat configuration and the edge state it reads.
    ``var_state_of_edge_state`` maps each edge state to its global variable state.
    """

    factor_graph: Any
    variables: Any
    inferer: Any
    initial_arrays: Any
    layout_of_flat: np.ndarray
    flat_of_layout: np.ndarray
    factor_of_flat: np.ndarray
    config_of_edge_row: np.ndarray
    edge_state_of_row: np.ndarray
    var_state_of_edge_state: np.ndarray
    n_edges: int


def _add_factor_groups(pgmax, factor_graph, variables, layout: FactorLayout) -> None:
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for f, shape in enumerate(layout.shapes):
        by_shape.setdefault(shape, []).append(f)
    for shape, factors in by_shape.items():
        ids = np.stack([np.arange(layout.factor_slice(f).start, layout.factor_slice(f).stop) for f in factors])
        group = pgmax.fgroup.EnumFactorGroup(
            variables_for_factors=[[variables[i] for i in layout.scopes[f]] for f in factors],
            factor_configs=enumerate_configs(shape),
            log_potentials=ids.astype(np.float64),
        )
        factor_graph.add_factors(group)


def build_graph(layout: FactorLayout, n_states: list[int]) -> PgmaxGraph:
    """Build the factor graph, the sum-product inferer and the index maps."""
    pgmax = import_pgmax()
    variables = pgmax.vgroup.VarDict(
        variable_names=tuple(range(len(n_states))), num_states=np.asarray(n_states, dtype=np.int64)
    )
    factor_graph = pgmax.fgraph.FactorGraph(variable_groups=[variables])
    _add_factor_groups(pgmax, factor_graph, variables, layout)

    bp_state = factor_graph.bp_state
    fg_state = bp_state.fg_state
    enum_type = pgmax.EnumFactor
    n_configs = layout.n_configs
    if fg_state.factor_type_to_potentials_range[enum_type] != (0, n_configs):
        raise RuntimeError("unexpected PGMax layout: enumeration factors must hold every log potential")
    wiring = fg_state.wiring[enum_type]
    n_edge_states = int(np.asarray(wiring.var_states_for_edges).shape[0])
    if fg_state.factor_type_to_msgs_range[enum_type] != (0, n_edge_states):
        raise RuntimeError("unexpected PGMax layout: enumeration factors must hold every message")

    layout_of_flat = np.rint(np.asarray(bp_state.log_potentials.value, dtype=np.float64)).astype(np.int64)
    if sorted(layout_of_flat.tolist()) != list(range(n_configs)):
        raise RuntimeError("unexpected PGMax layout: log potentials are not a permutation of the configurations")
    flat_of_layout = np.argsort(layout_of_flat)
    edges = np.asarray(wiring.var_states_for_edges)
    inferer = pgmax.infer.build_inferer(bp_state, backend="bp")
    return PgmaxGraph(
        factor_graph=factor_graph,
        variables=variables,
        inferer=inferer,
        initial_arrays=inferer.init(),
        layout_of_flat=layout_of_flat,
        flat_of_layout=flat_of_layout,
        factor_of_flat=layout.factor_of_config[layout_of_flat],
        config_of_edge_row=np.asarray(wiring.factor_configs_edge_states[:, 0]),
        edge_state_of_row=np.asarray(wiring.factor_configs_edge_states[:, 1]),
        var_state_of_edge_state=edges[:, 0],
        n_edges=int(edges[-1, 1]) + 1 if edges.size else 0,
    )
