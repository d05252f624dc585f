"""Run in a fresh process with ``N`` CPU devices (``python device_run.py N [fit]``); prints JSON.

The same chains and the same fit with the chains split across ``N`` devices: the
draws are keyed by each chain's global index, so every count gives the same answer
up to the order of floating-point sums (``test_sharding`` compares the counts).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax

N_DEVICES = int(sys.argv[1])
jax.config.update("jax_num_cpu_devices", N_DEVICES)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from calibrated_response_plugins import DistributionBuilder  # noqa: E402
from calibrated_response_plugins.io import load_problem  # noqa: E402
from calibrated_response_smm.features import build_layout, graph_tables, moment_rows_to_tables, unpad_tables  # noqa: E402
from calibrated_response_smm.mcmc.gibbs import build_kernel  # noqa: E402
from calibrated_response_smm.mcmc.plan import build_plan  # noqa: E402
from calibrated_response_smm.mcmc.stream import seed_words  # noqa: E402
from calibrated_response_smm.mcmc.sweep import make_rows  # noqa: E402
from calibrated_response_smm.testing import mixed_graph  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "problems" / "lumina_probiotic.json"


def chains(num_chains: int = 512, n_sweeps: int = 30) -> dict:
    """Chain states and moments of the mixed test graph after ``n_sweeps`` split sweeps.

    Its (0, 1) pair is made strongly coupled, so the block moves after the sweeps run too.
    """
    graph = mixed_graph()
    strong = graph.factors[2].parameters.copy()
    strong[0, 0] += 8.0
    graph = graph.with_tables([strong if f.id == 2 else f.parameters for f in graph.factors])
    layout = build_layout(graph)
    plan = build_plan(graph, layout, num_chains // N_DEVICES).device()  # blocks sized for one share
    rows = make_rows(plan, layout.shape, tuple(jnp.asarray(t) for t in graph_tables(layout, graph)))
    kernel = build_kernel(plan, layout.shape, n_sweeps, devices=N_DEVICES)
    state = jax.jit(kernel.init, static_argnums=1)(jnp.asarray(seed_words(11)), num_chains)
    state, acc = jax.jit(kernel.step)(state, rows)
    x = state.x
    moments = unpad_tables(layout, graph, moment_rows_to_tables(layout.shape, acc.moments / acc.sweeps))
    return {"x": np.asarray(x)[: graph.n_vars].tolist(), "moments": [np.asarray(m).tolist() for m in moments],
            "x_devices": len(x.sharding.device_set)}


def example_fit(optimizer: str) -> dict:
    """The shipped example through the builder, chains split across ``N_DEVICES``.

    The first-order fit runs without block moves: a block moves while its pair's
    coupling is above a threshold, and the multipliers' last-bit differences between
    device counts can put one iteration's coupling on either side of it, after which
    the chains differ by their Monte Carlo noise rather than by rounding.
    """
    problem = load_problem(EXAMPLE)
    builder = DistributionBuilder(problem.variables, problem.estimates, backend="smm",
                                  config={"devices": N_DEVICES, "seed": 7, "optimizer": optimizer,
                                          "block_moves": optimizer != "sgd"})
    distribution, info = builder.build(problem.target_variable, progress=False)
    return {"probabilities": distribution.bin_probabilities.tolist(),
            "fitted": [row["fitted"] for row in info["constraint_report"]],
            "devices": info["diagnostics"]["devices"], "stderr": info["diagnostics"]["final_stderr"]}


if __name__ == "__main__":
    fits = {name: example_fit(name) for name in ("sgd", "newton")} if sys.argv[2:] == ["fit"] else {}
    print(json.dumps({"chains": chains(), "fits": fits}))
