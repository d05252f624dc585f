"""``backend="auto"`` and the conflict warning, against the real maxent backend (no smm fit runs here)."""

import pytest

from calibrated_response_plugins import DistributionBuilder
from calibrated_response_plugins.auto import component_sizes
from calibrated_response_plugins.builder import DEFAULT_BACKEND
from calibrated_response_plugins.conflicts import CONFLICT_RESIDUAL, conflict_warnings, violation
from calibrated_response_plugins.registry import installed_backends
from calibrated_response_plugins.testing import CONFORMANCE_PROBLEM

needs_both = pytest.mark.skipif(
    not {"maxent", "smm"} <= set(installed_backends()), reason="needs the maxent and smm backends"
)

RAIN = {"proposition_type": "equality", "variable": "rain", "variable_type": "binary", "value": True}
CONFLICTING = {
    "variables": [{"name": "rain", "type": "binary"}, {"name": "wind", "type": "binary"}],
    "estimates": [
        {"id": "p_rain_high", "estimate_type": "probability", "probability": 0.9, "proposition": RAIN},
        {"id": "p_rain_low", "estimate_type": "probability", "probability": 0.1, "proposition": RAIN},
        {"id": "p_wind", "estimate_type": "probability", "probability": 0.4,
         "proposition": {**RAIN, "variable": "wind"}},
    ],
}


def conformance_builder(**kwargs):
    return DistributionBuilder(CONFORMANCE_PROBLEM["variables"], CONFORMANCE_PROBLEM["estimates"], **kwargs)


def test_component_sizes_multiply_linked_variables():
    # 0-1 linked (2 x 3), 2-3 linked (4 x 5), 4 alone (7).
    assert component_sizes([2, 3, 4, 5, 7], [(0,), (0, 1), (2, 3)]) == [20, 7, 6]
    assert component_sizes([2, 3], []) == [3, 2]


@needs_both
def test_auto_is_the_default_and_picks_maxent_for_a_small_joint():
    assert DEFAULT_BACKEND == "auto"
    builder = conformance_builder()
    assert builder.backend == "maxent"
    _, info = builder.build(progress=False)
    assert info["backend"] == "maxent"
    # 2 x 2 x 21 states, one group linked through the conditionals.
    assert "84 joint states" in info["backend_reason"] and "expected faster" in info["backend_reason"]
    assert info["converged"]


@needs_both
def test_auto_never_hands_maxent_a_joint_past_its_guard():
    builder = conformance_builder(config={"max_states": 50})
    assert builder.backend == "smm"
    assert "max_states=50" in builder.backend_reason


@needs_both
def test_auto_takes_smm_for_options_only_smm_knows():
    builder = conformance_builder(config={"num_chains": 256})
    assert builder.backend == "smm" and builder.config.num_chains == 256
    assert "not maxent's" in builder.backend_reason


@needs_both
def test_an_explicit_backend_wins():
    builder = conformance_builder(backend="smm")
    assert builder.backend == "smm" and builder.backend_reason == "requested by name"


def test_violation_counts_only_the_broken_side_of_an_inequality():
    assert violation({"relation": "eq", "scaled_residual": -0.2}) == pytest.approx(0.2)
    assert violation({"relation": "ge", "scaled_residual": 0.3}) == 0.0
    assert violation({"relation": "ge", "scaled_residual": -0.3}) == pytest.approx(0.3)
    assert violation({"relation": "le", "scaled_residual": 0.3}) == pytest.approx(0.3)
    assert violation({"relation": "eq", "scaled_residual": float("nan")}) == 0.0


def test_conflict_warning_names_the_worst_first():
    rows = [
        {"id": "a", "relation": "eq", "target": 0.5, "fitted": 0.51, "scaled_residual": 0.01},
        {"id": "b", "relation": "eq", "target": 0.9, "fitted": 0.7, "scaled_residual": -0.2},
        {"id": "c", "relation": "eq", "target": 0.1, "fitted": 0.4, "scaled_residual": 0.3},
    ]
    (warning,) = conflict_warnings(rows)
    assert "compromise" in warning and "2 estimate(s)" in warning
    assert warning.index("c (target 0.1") < warning.index("b (target 0.9")
    assert "a (" not in warning
    assert conflict_warnings(rows[:1]) == []


@needs_both
def test_conflicting_estimates_are_reported_as_a_compromise():
    _, info = DistributionBuilder(CONFLICTING["variables"], CONFLICTING["estimates"]).build(progress=False)
    assert info["backend"] == "maxent"
    # The exact compromise of P = 0.9 and P = 0.1 with equal l2 weights is 0.5 (residuals +-0.4).
    assert info["marginals"]["rain"][1] == pytest.approx(0.5, abs=1e-3)
    conflicts = [w for w in info["warnings"] if "conflict" in w]
    assert len(conflicts) == 1 and "p_rain_high" in conflicts[0] and "p_rain_low" in conflicts[0]
    assert "p_wind" not in conflicts[0]
    # The consistent conformance problem meets every estimate: no such warning.
    _, clean = conformance_builder(backend="maxent").build(progress=False)
    assert not [w for w in clean["warnings"] if "conflict" in w]
    assert CONFLICT_RESIDUAL < 0.4
