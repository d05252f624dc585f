"""Sample a known pairwise MRF, fit one indicator per table cell from the samples, compare.

    python examples/maxent_smm_fit_from_samples.py

Pairwise tables are identifiable only up to a gauge (constants moved between
factors), so parameters are compared through the gauge-free log odds ratio
``theta[1,1] + theta[0,0] - theta[0,1] - theta[1,0]`` of each binary pair.
"""

from __future__ import annotations

import numpy as np
from calibrated_response_smm.config import SMMConfig
from calibrated_response_smm.graph import FactorGraph, SMMVariable
from calibrated_response_smm.mcmc.buffer import PersistentBuffer
from calibrated_response_smm.targets import build_targets_from_samples
from calibrated_response_smm.training import fit_smm


def log_odds_ratio(table):
    return table[1, 1] + table[0, 0] - table[0, 1] - table[1, 0]


def main():
    rng = np.random.default_rng(0)
    n = 12
    variables = [SMMVariable.categorical(f"x{i}", 2) for i in range(n)]
    scopes = [(i,) for i in range(n)] + [(i, i + 1) for i in range(n - 1)] + [(0, n - 1)]
    tables = [rng.normal(scale=0.5, size=2) if len(s) == 1 else rng.normal(scale=1.0, size=(2, 2)) for s in scopes]
    truth = FactorGraph.from_scopes(variables, scopes, tables)

    buffer = PersistentBuffer.initialize(truth, num_chains=20_000, rng=1).sample_step(truth, n_sweeps=50)
    samples = buffer.get_states()
    targets = build_targets_from_samples(truth, samples)
    print(f"{samples['cat'].shape[0]} samples of a {n}-variable ring MRF")

    fitted, history = fit_smm(
        FactorGraph.from_scopes(variables, scopes), targets, num_iterations=300, mcmc_steps_per_iteration=2,
        learning_rate=0.05, optimizer="adam", l2_regularization=1e-4, rng=2, config=SMMConfig(num_chains=4096),
    )
    true_marginals = PersistentBuffer.initialize(truth, 4096, rng=3).sample_step(truth, n_sweeps=50).marginals(200)
    print(f"fit: {history['iteration'][-1]} iterations, last max moment error {history['max_error'][-1]:.4f}")
    print(f"{'variable':<9}{'P(x=1) true':>12}{'fitted':>9}")
    for i in range(n):
        print(f"x{i:<8}{true_marginals[i][1]:>12.3f}{history['marginals'][i][1]:>9.3f}")
    print(f"{'pair':<9}{'log OR true':>12}{'fitted':>9}")
    for factor, original in zip(fitted.factors, truth.factors):
        if factor.arity == 2:
            pair = f"{factor.var_ids[0]}-{factor.var_ids[1]}"
            print(f"{pair:<9}{log_odds_ratio(original.parameters):>12.3f}{log_odds_ratio(factor.parameters):>9.3f}")
    gap = max(abs(a[1] - b[1]) for a, b in zip(true_marginals, history["marginals"]))
    print(f"largest marginal difference: {gap:.4f}")


if __name__ == "__main__":
    main()
