"""The smm builder returns normalised histograms for the target and every variable."""

from __future__ import annotations

import numpy as np
import pytest
from calibrated_response_plugins.testing import CONFORMANCE_PROBLEM, BackendConformance
from calibrated_response_smm.distribution_builder import DistributionBuilder


class TestSmmConformance(BackendConformance):
    backend = "smm"
    # Defaults: the conformance problem is the size of the real cases, so the default
    # schedule is what is being certified; its Monte Carlo error is about 1e-3.
    tolerance = 0.01
    residual_tolerance = 0.02


@pytest.fixture(scope="module")
def built():
    builder = DistributionBuilder(CONFORMANCE_PROBLEM["variables"], CONFORMANCE_PROBLEM["estimates"],
                                  config={"num_chains": 512, "seed": 2})
    histogram, info = builder.build(target_variable="temperature", progress=False)
    return builder, histogram, info


def test_target_histogram_is_normalised(built):
    _, histogram, info = built
    assert len(histogram.bin_probabilities) == 21
    assert np.isclose(np.sum(histogram.bin_probabilities), 1.0)
    assert info["backend"] == "smm" and info["target_variable"] == "temperature"


def test_all_marginals_are_normalised(built):
    builder, _, info = built
    marginals = builder.get_all_marginals(info)
    assert list(marginals) == ["festival", "rain", "temperature"]
    for hist in marginals.values():
        assert np.all(np.asarray(hist.bin_probabilities) >= 0)
        assert np.isclose(np.sum(hist.bin_probabilities), 1.0)


def test_info_carries_history_and_diagnostics(built):
    _, _, info = built
    history = info["history"]
    for key in ("iteration", "max_error", "mean_error", "acceptance", "runtime", "skipped_constraints"):
        assert key in history, key
    assert history["skipped_constraints"] == info["skipped_constraints"]
    assert info["diagnostics"]["num_chains"] == 512
    assert info["diagnostics"]["compile_time_s"] >= 0


def test_builder_refuses_another_backend():
    with pytest.raises(ValueError, match="smm"):
        DistributionBuilder(CONFORMANCE_PROBLEM["variables"], CONFORMANCE_PROBLEM["estimates"], backend="maxent")
