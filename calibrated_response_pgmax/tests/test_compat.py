"""The JAX compatibility shim for PGMax 0.6.1."""

from __future__ import annotations

import jax
import jax.lib
import numpy as np

from calibrated_response_pgmax._compat import ensure_xla_bridge, import_pgmax


def test_shim_restores_xla_bridge_when_jax_lacks_it(monkeypatch):
    if hasattr(jax.lib, "xla_bridge"):
        monkeypatch.delattr(jax.lib, "xla_bridge")
    assert ensure_xla_bridge() is True
    assert jax.lib.xla_bridge.get_backend().platform == jax.default_backend()


def test_shim_leaves_an_existing_xla_bridge_alone(monkeypatch):
    sentinel = object()
    monkeypatch.setattr(jax.lib, "xla_bridge", sentinel, raising=False)
    assert ensure_xla_bridge() is False
    assert jax.lib.xla_bridge is sentinel


def test_pgmax_builds_and_runs_an_inferer_on_installed_jax():
    pgmax = import_pgmax()
    variables = pgmax.vgroup.NDVarArray(num_states=2, shape=(2,))
    graph = pgmax.fgraph.FactorGraph(variable_groups=[variables])
    # One pairwise factor favouring agreement: P(x0 = x1) = e / (1 + e).
    graph.add_factors(pgmax.fgroup.EnumFactorGroup(
        variables_for_factors=[[variables[0], variables[1]]],
        factor_configs=np.array([[0, 0], [0, 1], [1, 0], [1, 1]]),
        log_potentials=np.array([[1.0, 0.0, 0.0, 1.0]]),
    ))
    inferer = pgmax.infer.build_inferer(graph.bp_state, backend="bp")
    arrays = inferer.run(inferer.init(), num_iters=5, damping=0.0, temperature=1.0)
    marginals = pgmax.infer.get_marginals(inferer.get_beliefs(arrays))[variables]
    # Symmetric potential: both marginals are exactly uniform up to float32 rounding.
    np.testing.assert_allclose(np.asarray(marginals), 0.5, atol=1e-6)
