"""One process of a multi-process fit (``python distributed_run.py RANK N PORT``); prints JSON.

``N`` processes on this host join at ``127.0.0.1:PORT`` (``N = 1``: a plain
one-process fit on one device) and fit the shared small binary problem with the
chains split across every process's devices.
"""

from __future__ import annotations

import json
import sys

RANK, N_PROCESSES, PORT = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

from calibrated_response_smm import distributed  # noqa: E402

if N_PROCESSES > 1:  # before any other JAX computation
    distributed.initialize(f"127.0.0.1:{PORT}", N_PROCESSES, RANK, timeout_s=120)

import jax  # noqa: E402
import numpy as np  # noqa: E402
from calibrated_response_smm.adapters import constraint_means  # noqa: E402

from calibrated_response_plugins.testing import small_binary_problem  # noqa: E402
from calibrated_response_smm.testing import fit_constraints  # noqa: E402

adapted, _, fit = fit_constraints(small_binary_problem(), num_chains=256, seed=3,
                                           optimizer="sgd", devices=None if N_PROCESSES > 1 else 1)
means, _ = constraint_means(adapted, fit.table_moments)
print(json.dumps({"rank": RANK, "processes": jax.process_count(), "devices": fit.diagnostics["devices"],
                  "means": means.tolist(), "params": np.asarray(fit.params).tolist(),
                  "marginals": [np.asarray(p).tolist() for p in fit.marginals]}))
if N_PROCESSES > 1:
    distributed.shutdown()
