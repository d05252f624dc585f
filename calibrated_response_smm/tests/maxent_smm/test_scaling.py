"""A sparse graph of ~100 variables runs a training step and a marginal extraction."""

from __future__ import annotations

import numpy as np
from calibrated_response_smm.config import SMMConfig
from calibrated_response_smm.graph import FactorGraph, SMMVariable
from calibrated_response_smm.mcmc.buffer import PersistentBuffer
from calibrated_response_smm.targets import build_targets_from_samples
from calibrated_response_smm.training import SMMModel, fit_model


def sparse_graph(n=100, states=5, seed=0):
    rng = np.random.default_rng(seed)
    variables = [SMMVariable.categorical(f"x{i}", states) for i in range(n)]
    scopes = [(i,) for i in range(n)] + [(i, i + 1) for i in range(n - 1)]
    scopes += [tuple(sorted(rng.choice(n, 2, replace=False))) for _ in range(n // 2)]
    scopes = sorted(set(scopes), key=lambda s: (len(s), s))
    tables = [rng.normal(scale=0.5, size=[states] * len(s)) for s in scopes]
    return FactorGraph.from_scopes(variables, scopes, tables)


def test_training_step_and_marginals():
    truth = sparse_graph()
    buffer = PersistentBuffer.initialize(truth, num_chains=256, rng=0).sample_step(truth, n_sweeps=30)
    targets = build_targets_from_samples(truth, buffer.get_states())
    config = SMMConfig(num_chains=256, num_iterations=1, chunk_size=1, averaging_iterations=0,
                       burn_in_sweeps=0, final_sweeps=2, optimizer="adam", learning_rate=0.05)
    model = SMMModel.build(FactorGraph.from_scopes(truth.variables, [f.var_ids for f in truth.factors]), targets,
                           config.num_chains)
    fit = fit_model(model, config)
    assert fit.n_iterations == 1 and len(fit.history["max_error"]) == 1
    assert len(fit.marginals) == 100
    for p in fit.marginals:
        assert p.shape == (5,) and np.isclose(p.sum(), 1.0)
    # one Adam step moves every table toward its target
    assert all(np.any(t != 0) for t in (f.parameters for f in fit.graph.factors))
