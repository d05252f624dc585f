"""Run in a fresh process with two CPU devices (``python sharded_run.py``); prints JSON.

JAX fixes its device count at its first computation, so the split-chain checks run
here, apart from the test process's single device.
"""

from __future__ import annotations

import json
import jax

jax.config.update("jax_num_cpu_devices", 2)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from calibrated_response_smm.adapters import constraint_means  # noqa: E402
from calibrated_response_smm.features import build_layout, graph_tables, moment_rows_to_tables, unpad_tables  # noqa: E402
from calibrated_response_smm.mcmc import sharding  # noqa: E402
from calibrated_response_smm.mcmc.gibbs import build_kernel  # noqa: E402
from calibrated_response_smm.mcmc.plan import build_plan  # noqa: E402
from calibrated_response_smm.mcmc.stream import seed_words  # noqa: E402
from calibrated_response_smm.mcmc.sweep import make_rows  # noqa: E402

from calibrated_response_plugins.testing import small_binary_problem  # noqa: E402
from calibrated_response_smm.testing import fit_constraints, mixed_graph  # noqa: E402


def sweep_moments(num_chains: int = 1024, n_sweeps: int = 400):
    """Table moments and marginals of the mixed test graph from sweeps split across two devices."""
    graph = mixed_graph()
    layout = build_layout(graph)
    plan = build_plan(graph, layout, num_chains // 2).device()
    rows = make_rows(plan, layout.shape, tuple(jnp.asarray(t) for t in graph_tables(layout, graph)))
    kernel = build_kernel(plan, layout.shape, n_sweeps, devices=2)
    state = jax.jit(kernel.init, static_argnums=1)(jnp.asarray(seed_words(0)), num_chains)
    step = jax.jit(kernel.step)
    state, _ = step(state, rows)
    state, acc = step(state, rows)
    x = state.x
    moments = unpad_tables(layout, graph, moment_rows_to_tables(layout.shape, acc.moments / acc.sweeps))
    halves = np.asarray(x)[: graph.n_vars].reshape(graph.n_vars, 2, num_chains // 2)
    return {
        "moments": [np.asarray(m).tolist() for m in moments],
        "marginals": np.asarray(acc.marginals / acc.sweeps)[: graph.n_vars].tolist(),
        "sweeps": float(acc.sweeps),
        "halves_equal": bool(np.array_equal(halves[:, 0], halves[:, 1])),
        "x_devices": len(x.sharding.device_set),
    }


def small_fit():
    """The small binary problem of the core's test helpers fitted with its chains on two devices."""
    problem = small_binary_problem()
    adapted, _, fit = fit_constraints(problem, num_chains=1024, seed=3, devices=2)
    means, _ = constraint_means(adapted, fit.table_moments)
    errors = {}
    for name, (devices, chains) in {"too_many": (3, 1024), "not_a_divisor": (2, 1023)}.items():
        try:
            sharding.chain_devices(devices, chains, 10)
        except ValueError as error:
            errors[name] = str(error)
    return {"means": means.tolist(), "devices": fit.diagnostics["devices"], "converged": fit.converged,
            "errors": errors}


if __name__ == "__main__":
    print(json.dumps({"sweeps": sweep_moments(), "fit": small_fit()}))
