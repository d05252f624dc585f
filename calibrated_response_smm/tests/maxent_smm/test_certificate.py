"""The convergence certificate: fresh chain groups at the final multipliers must confirm the optimum."""

from __future__ import annotations

import numpy as np
import pytest
from calibrated_response_plugins import DistributionBuilder
from calibrated_response_plugins.testing import CONFORMANCE_PROBLEM
from calibrated_response_smm.certificate import GRADIENT_TOLERANCE, assess, doubt_warning, group_labels
from calibrated_response_smm.targets import MomentTarget, MomentTargets
from calibrated_response_smm.testing import assert_matches_brute_force, fit_constraints

N_CHAINS = 4096


def two_targets() -> MomentTargets:
    """A plain mean with target 0.3 and a ratio P(A | C) = 0.6 (centred feature, target 0)."""
    one = np.array([0.0, 1.0])
    return MomentTargets([
        MomentTarget(0, one, 0.3, 1e-3),
        MomentTarget(1, np.outer(one, one) - 0.6 * np.outer(np.ones(2), one), 0.0, 1e-3, "eq", np.outer(np.ones(2), one)),
    ])


def chain_means(rng, plain_mean, ratio_gap, den_mean, noise=0.01) -> np.ndarray:
    """Per-chain averages ``[3, C]``: the plain feature, the centred ratio feature, its denominator."""
    plain = plain_mean + noise * rng.standard_normal(N_CHAINS)
    den = den_mean + noise * rng.standard_normal(N_CHAINS)
    ratio = ratio_gap * den + noise * rng.standard_normal(N_CHAINS)
    return np.stack([plain, ratio, den])


def test_groups_are_contiguous_and_balanced():
    labels = group_labels(10, 4)
    assert labels.tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]
    assert np.bincount(group_labels(N_CHAINS)).tolist() == [N_CHAINS // 4] * 4


def test_chains_at_the_optimum_pass():
    rng = np.random.default_rng(0)
    # Multipliers 0: the optimum has E[g] = c exactly (s^2 lambda = 0).
    certificate = assess(chain_means(rng, 0.3, 0.0, 0.4), two_targets(), np.zeros(2), group_labels(N_CHAINS))
    assert certificate.passed and not certificate.doubts
    # noise 0.01 over 4096 chains: standard error ~1.6e-4 (plain), ~4e-4 (ratio over P(C) = 0.4)
    assert certificate.max_gradient < 5e-3
    assert certificate.max_rhat == pytest.approx(1.0, abs=0.01)


def test_a_ratio_off_its_target_is_named_in_report_units():
    rng = np.random.default_rng(1)
    # E[w_AC - 0.6 w_C] = -0.01 with P(C) = 0.4: the reported ratio is 0.025 below 0.6.
    certificate = assess(chain_means(rng, 0.3, -0.025, 0.4), two_targets(), np.zeros(2), group_labels(N_CHAINS))
    assert not certificate.passed
    (doubt,) = certificate.doubts
    assert doubt.index == 1
    # gradient c - E[g] = +0.01 in feature units, /P(C) = 0.025; noise ~4e-4 (see above)
    assert doubt.gradient == pytest.approx(0.025, abs=2e-3)
    warning = doubt_warning(certificate, ["p_mean", "p_a_given_c"])
    assert "p_a_given_c" in warning and "p_mean" not in warning and "+0.025" in warning


def test_groups_that_disagree_fail_even_when_the_pooled_mean_is_right():
    rng = np.random.default_rng(2)
    means = chain_means(rng, 0.3, 0.0, 0.4)
    # Chains stuck where they started: the continued half 0.05 high, the fresh half 0.05 low.
    means[0, : N_CHAINS // 2] += 0.05
    means[0, N_CHAINS // 2 :] -= 0.05
    certificate = assess(means, two_targets(), np.zeros(2), group_labels(N_CHAINS))
    assert abs(certificate.max_gradient) < GRADIENT_TOLERANCE  # the pooled gradient alone would pass
    assert not certificate.passed and [d.index for d in certificate.doubts] == [0]
    assert certificate.doubts[0].group_spread == pytest.approx(0.1, abs=0.01)
    assert certificate.max_rhat > 1.5


def test_an_inequality_held_at_its_bound_is_not_in_doubt():
    one = np.array([0.0, 1.0])
    targets = MomentTargets([MomentTarget(0, one, 0.3, 1e-3, "le")])
    rng = np.random.default_rng(3)
    means = (0.2 + 0.01 * rng.standard_normal(N_CHAINS))[None, :]  # E[g] = 0.2 <= 0.3: satisfied, lambda 0
    assert assess(means, targets, np.zeros(1), group_labels(N_CHAINS)).passed


def test_a_converged_fit_is_certified(small_binary_problem):
    adapted, _, fit = fit_constraints(small_binary_problem, num_chains=2048, seed=0)
    certificate = fit.diagnostics["certificate"]
    assert fit.converged and certificate["passed"], certificate
    assert certificate["max_gradient"] <= GRADIENT_TOLERANCE + 4 * 0.01  # loose: the assert above is the test
    assert_matches_brute_force(small_binary_problem, adapted, fit, atol=0.02)


def test_an_unfinished_fit_is_not_called_converged_and_the_warning_names_the_constraints():
    # One tiny step from lambda = 0: the answer is nearly uniform, far from every estimate.
    options = {"num_iterations": 1, "chunk_size": 1, "learning_rate": 1e-3, "averaging_iterations": 0,
               "polish_steps": 0, "tolerance": 1.0, "num_chains": 1024}
    builder = DistributionBuilder(CONFORMANCE_PROBLEM["variables"], CONFORMANCE_PROBLEM["estimates"],
                                  backend="smm", config=options)
    _, info = builder.build(progress=False)
    # tolerance=1.0 lets the search's own test pass; the certificate must not.
    assert info["diagnostics"]["search_converged"]
    assert not info["converged"]
    (warning,) = [w for w in info["warnings"] if "not converged" in w]
    # Uniform: P(rain) = 0.5 against 0.3 -> gradient -0.2, far outside the tolerance.
    assert "p_rain" in warning and "dual gradient" in warning
