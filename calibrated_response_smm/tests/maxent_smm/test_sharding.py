"""Chains split across devices sample the same model and fit the same answer as one device."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from calibrated_response_smm.config import SMMConfig
from calibrated_response_plugins.testing import exact_fit
from calibrated_response_smm.mcmc import sharding
from calibrated_response_smm.testing import graph_joint, mixed_graph


@pytest.fixture(scope="module")
def two_devices() -> dict:
    """What ``sharded_run.py`` measured in a fresh process with two CPU devices."""
    script = Path(__file__).with_name("sharded_run.py")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def device_counts() -> dict:
    """``device_run.py`` in fresh processes with 1, 2 and 4 CPU devices (the example fits at 1 and 2)."""
    script = Path(__file__).with_name("device_run.py")
    runs = {}
    for n in (1, 2, 4):
        args = [sys.executable, str(script), str(n)] + (["fit"] if n < 4 else [])
        done = subprocess.run(args, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[n] = json.loads(done.stdout.strip().splitlines()[-1])
    return runs


def test_draws_do_not_depend_on_the_device_count(device_counts):
    one = device_counts[1]["chains"]
    for n in (2, 4):
        split = device_counts[n]["chains"]
        assert split["x_devices"] == n
        # each chain's stream is keyed by its global index: the very same states
        assert split["x"] == one["x"]
        for a, b in zip(split["moments"], one["moments"]):
            # the same conditionals averaged in another order (per device, then across):
            # float32 rounding of a mean of 512 x 30 terms of at most 1, a few 1e-7
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_fit_does_not_depend_on_the_device_count(device_counts):
    one, two = device_counts[1]["fits"], device_counts[2]["fits"]
    assert (one["sgd"]["devices"], two["sgd"]["devices"]) == (1, 2)
    # (without block moves, see device_run.example_fit)
    # First-order steps carry the moments' last-bit differences along without growing
    # them much: the answers agree to float32 rounding carried through 130 iterations
    # (measured 2e-7 in P(target), 1.4e-5 in a conditional with a denominator of 0.25,
    # 4e-5 of 39 in the mean constraint, which is in percent); the example's correlation
    # loop refits several times and carries them through each fit (measured 1.3e-5 in
    # P(target)); 1e-4 is 20 times below the final standard error.
    np.testing.assert_allclose(two["sgd"]["probabilities"], one["sgd"]["probabilities"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(two["sgd"]["fitted"], one["sgd"]["fitted"], rtol=1e-5, atol=1e-4)
    # The Newton step's float32 solve magnifies those differences by the conditioning of
    # the chains' covariance (8e-4 in a multiplier after the first step), so chains part
    # after a few iterations and the answers differ by a fraction of the Monte Carlo
    # error (measured 4e-4 in P(target), the final standard error 2.3e-3; independent
    # streams per device gave 3.6e-3). Block moves (on here) part them the same way.
    gap = np.max(np.abs(np.subtract(two["newton"]["probabilities"], one["newton"]["probabilities"])))
    assert gap < one["newton"]["stderr"]


def test_split_sweeps_match_enumeration(two_devices):
    run = two_devices["sweeps"]
    assert run["x_devices"] == 2
    assert not run["halves_equal"]  # every chain draws its own stream
    assert run["sweeps"] == 400  # sums averaged across devices, not added
    graph = mixed_graph()
    joint = graph_joint(graph)
    for factor, table in zip(graph.factors, run["moments"]):
        expected = joint.sum(axis=tuple(i for i in range(graph.n_vars) if i not in factor.var_ids))
        # 1024 chains x 400 sweeps, Rao-Blackwellised: standard error below 1e-3 per
        # cell; 0.005 leaves room for autocorrelation between sweeps.
        np.testing.assert_allclose(np.asarray(table), expected, atol=0.005)
    for i, size in enumerate(graph.sizes):
        expected = joint.sum(axis=tuple(j for j in range(graph.n_vars) if j != i))
        np.testing.assert_allclose(run["marginals"][i][:size], expected, atol=0.005)


def test_split_fit_matches_brute_force(two_devices, small_binary_problem):
    fit = two_devices["fit"]
    assert fit["devices"] == 2 and fit["converged"]
    means = exact_fit(small_binary_problem).feature_means
    # as test_small_binary: 1024 chains x 60 final sweeps, standard error ~1e-3
    np.testing.assert_allclose(fit["means"], means, atol=0.01)


def test_bad_device_counts_are_named(two_devices):
    errors = two_devices["fit"]["errors"]
    assert "devices=3" in errors["too_many"] and "use_cpu_cores" in errors["too_many"]
    assert "must divide num_chains=1023" in errors["not_a_divisor"]


def test_automatic_count_keeps_small_work_on_one_device():
    assert sharding.chain_devices(None, 2048, 20) == 1  # 40k site updates per sweep
    assert sharding.chain_devices(None, 256, 100_000, n_multipliers=30_000_000) == 1  # replicated dual state
    with pytest.raises(ValueError, match="devices"):
        SMMConfig(devices=0)


def _python(code: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split()


def test_use_cpu_cores_acts_only_before_jax_starts():
    report = "from calibrated_response_smm import use_cpu_cores; print(use_cpu_cores(3), jax.local_device_count())"
    before = "import jax; " + report
    after = "import jax; jax.numpy.zeros(1); " + report
    assert _python(before) == ["True", "3"]
    assert _python(after) == ["False", "1"]  # a running JAX keeps its devices


def test_use_cpu_cores_respects_a_chosen_count():
    code = (
        "import jax; jax.config.update('jax_num_cpu_devices', 1);"
        "from calibrated_response_smm import use_cpu_cores; print(use_cpu_cores(), jax.local_device_count())"
    )
    assert _python(code) == ["False", "1"]



def test_compiling_leaves_the_device_count_alone_unless_asked():
    """The backend changes JAX's process-wide CPU device count only with ``one_device_per_core``."""
    code = (
        "import jax; from calibrated_response_plugins import DistributionBuilder;"
        "from calibrated_response_plugins.testing import CONFORMANCE_PROBLEM as P;"
        "b = DistributionBuilder(P['variables'], P['estimates'], backend='smm', config={OPTIONS});"
        "b._plugins.hook.compile_constraints(problem=b.compile(), config=b.config);"
        "print(jax.config.jax_num_cpu_devices)"
    )
    assert _python(code.replace("{OPTIONS}", "None")) == ["-1"]  # -1: JAX's own default
    asked = _python(code.replace("{OPTIONS}", "{'one_device_per_core': True}"))
    assert int(asked[0]) >= 1
