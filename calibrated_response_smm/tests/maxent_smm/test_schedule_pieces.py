"""The search's chunk statistics, the burn-in they set, and the sweep's stage merging, against exact references."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from calibrated_response_smm.config import SMMConfig
from calibrated_response_smm.mcmc.plan import MERGE_PADDING, merge_small_stages
from calibrated_response_smm.step import autocorrelation_time
from calibrated_response_smm.training import (
    BURN_IN_TIMES,
    DENSE_POLISH_MAX,
    MIN_BURN_IN,
    adaptive_burn_in,
    polish_curvature,
    secant_length,
)


# -- autocorrelation time ----------------------------------------------------------------


def _ar1_sums(rhos, n: int, chains: int, seed: int = 0):
    """Chunk sums of AR(1) readings with unit variance, one feature per ``rho``."""
    rng = np.random.default_rng(seed)
    rhos = np.asarray(rhos)[:, None]
    x = rng.normal(size=(len(rhos), chains))  # stationary start
    value_sums = np.zeros_like(x)
    variance_sums = np.zeros(len(rhos))
    for _ in range(n):
        value_sums += x
        variance_sums += x.var(axis=1)
        x = rhos * x + np.sqrt(1.0 - rhos**2) * rng.normal(size=x.shape)
    return jnp.asarray(value_sums, jnp.float32), jnp.asarray(variance_sums, jnp.float32)


def _finite_tau(rho: float, n: int) -> float:
    """``n Var(mean) / Var(reading)`` of an AR(1) series of ``n`` readings, exactly."""
    k = np.arange(1, n)
    return 1.0 + 2.0 * float(np.sum((1.0 - k / n) * rho**k))


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.8])
def test_autocorrelation_time_of_ar1_readings(rho):
    """The largest feature's ``tau`` (here the AR(1) one; the other is white noise), in sweeps.

    The spread over C = 20,000 chains has relative error ``sqrt(2 / C)`` = 1%: 5% is five of them.
    """
    n, sweeps = 20, 2
    value_sums, variance_sums = _ar1_sums([0.0, rho], n, 20_000)
    tau = autocorrelation_time(value_sums, variance_sums, n, sweeps)
    assert float(tau) == pytest.approx(sweeps * _finite_tau(rho, n), rel=0.05)


def test_autocorrelation_time_leaves_out_constant_features():
    value_sums, variance_sums = _ar1_sums([0.5], 10, 4_000)
    constant = jnp.concatenate([value_sums, jnp.full((1, value_sums.shape[1]), 7.0)])  # same value every reading
    with_constant = autocorrelation_time(constant, jnp.concatenate([variance_sums, jnp.zeros(1)]), 10, 1)
    assert float(with_constant) == pytest.approx(float(autocorrelation_time(value_sums, variance_sums, 10, 1)))


def test_no_values_no_autocorrelation_time():
    assert float(autocorrelation_time(None, jnp.zeros(3), 10, 2)) == 0.0


# -- burn-in -----------------------------------------------------------------------------


def test_adaptive_burn_in():
    config = SMMConfig(burn_in_sweeps=100, chunk_size=10, mcmc_steps_per_iteration=2)  # chunks of 20 sweeps
    assert adaptive_burn_in(config, None) == 100  # not measured
    assert adaptive_burn_in(config, float("nan")) == 100
    assert adaptive_burn_in(config, 10.0) == 100  # half the chunk: did not decorrelate within it
    assert adaptive_burn_in(config, 0.5) == MIN_BURN_IN
    assert adaptive_burn_in(config, 4.0) == BURN_IN_TIMES * 4
    assert adaptive_burn_in(SMMConfig(burn_in_sweeps=15), 4.0) == 15  # capped by the setting


# -- merging small sweep stages ------------------------------------------------------------


def test_small_stages_join_the_next_degree_within_the_padding_budget():
    # width 2: 200 variables of degree 2, 3 of degree 6, 2 of degree 10; width 21: 50 of degree 1, 40 of 4
    keys = np.array([[2, 0, 2]] * 200 + [[6, 0, 2]] * 3 + [[10, 0, 2]] * 2 + [[1, 0, 21]] * 50 + [[4, 0, 21]] * 40)
    merged = merge_small_stages(keys)
    binary = merged[merged[:, 2] == 2, 0]
    # budget 5% of 400 + 18 + 20 slots = 21.9: degree 6 -> 10 costs 12 (taken), then 2 -> 10 costs
    # 1,600 (not); the width-21 stages would pad 150 slots against a budget of 10.5: kept apart
    assert MERGE_PADDING == 0.05
    assert sorted(set(binary.tolist())) == [2, 10] and int(np.sum(binary == 10)) == 5
    assert np.array_equal(merged[merged[:, 2] == 21], keys[keys[:, 2] == 21])


@pytest.mark.parametrize("optimum", [0.2, 0.5, 0.9])
def test_secant_length_is_the_optimum_of_a_quadratic_line(optimum):
    # phi(a) = -(a - optimum)^2 along the step: slopes 2 optimum at 0 and -2 (1 - optimum) at 1
    before, after = 2.0 * optimum, -2.0 * (1.0 - optimum)
    assert secant_length(before, after, 0.0) == pytest.approx(optimum, rel=1e-12)


def test_secant_length_keeps_a_step_whose_slope_did_not_turn_beyond_its_noise():
    assert secant_length(1.0, 0.3, 0.1) == 1.0  # undershoot: the whole step
    assert secant_length(1.0, -0.15, 0.1) == 1.0  # turned by 1.5 standard errors: noise
    assert secant_length(1.0, -1.0, 0.1) == pytest.approx(0.5)
    assert secant_length(0.0, -1.0, 0.1) == 1.0  # no ascent along the step: nothing to cut back to


def test_the_polish_reads_the_full_covariance_where_the_final_estimate_can_measure_it():
    config = SMMConfig(num_chains=2048, final_sweeps=60, scope_every=4)  # 15 evaluations x 2,048 chains
    assert polish_curvature("local", 1999, config) == "dense"
    assert polish_curvature("local", DENSE_POLISH_MAX + 1, config) == "local"  # its eigendecomposition: too slow
    few = SMMConfig(num_chains=256, final_sweeps=60, scope_every=4)  # 3,840 samples for 1,999 multipliers
    assert polish_curvature("local", 1999, few) == "local"
    assert polish_curvature("diagonal", 10, config) == "diagonal"
    assert polish_curvature("dense", 10, config) == "dense"
