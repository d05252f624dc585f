"""The stress-problem generator draws real-shaped problems, deterministically, and its summary counts right."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import attrs
import numpy as np
import pytest

from calibrated_response_plugins import CoreConfig, compile_problem
from calibrated_response_plugins.models import coerce_estimate, coerce_variable

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def stress():
    spec = importlib.util.spec_from_file_location("benchmarks_stress", BENCHMARKS / "stress.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # attrs classes need their module registered
    spec.loader.exec_module(module)
    return module


def test_problems_have_the_promised_shape(stress):
    tags = set()
    for seed in range(12):
        problem = stress.stress_problem(seed)
        n_continuous = sum(v["type"] == "continuous" for v in problem.variables)
        assert 6 <= len(problem.variables) <= 9 and 3 <= n_continuous <= 5
        assert 20 <= len(problem.estimates) <= 40
        assert problem.n_joint_states <= stress.JOINT_BUDGET
        compiled = compile_problem([coerce_variable(v) for v in problem.variables],
                                   [coerce_estimate(e) for e in problem.estimates], CoreConfig(max_bins=problem.max_bins))
        assert len(compiled.skipped) <= 2, compiled.skipped  # thresholds stay inside their domains
        assert max(len(c.scope) for c in compiled.constraints) <= 3
        tags |= set(problem.tags)
        json.dumps(problem.to_json())  # a file the CLI reads
    assert {"conflict", "extreme", "rare", "inequality", "sd"} <= tags


def test_a_seed_gives_the_same_problem(stress):
    assert stress.stress_problem(7).to_json() == stress.stress_problem(7).to_json()
    assert stress.stress_problem(7).to_json() != stress.stress_problem(8).to_json()


def test_a_forced_conflict_rate_keeps_the_rest_of_the_draw(stress):
    drawn, forced = stress.stress_problem(3), stress.stress_problem(3, conflict=stress.CONFLICT_RATES[-1])
    assert forced.variables == drawn.variables  # drawn before the rate
    assert all("conflict" in stress.stress_problem(seed, conflict=0.25).tags for seed in range(6))
    assert not any("conflict" in stress.stress_problem(seed, conflict=0.0).tags for seed in range(6))


def test_bins_fit_the_budget(stress):
    five = [{"type": "continuous"}] * 5 + [{"type": "binary"}] * 3
    bins = stress.bins_for(five, budget=3_000_000)
    assert bins**5 * 8 <= 3_000_000 < (bins + 1) ** 5 * 8
    assert stress.bins_for([{"type": "continuous"}] * 3 + [{"type": "binary"}] * 3) == stress.DEFAULT_BINS


def test_summary_separates_flagged_from_silent_misses(stress):
    base = dict(n_variables=7, n_continuous=4, n_estimates=25, n_joint_states=1000, max_bins=21, tags=[],
                marginal_gap=0.001, residual_gap=0.001, worst_constraint="e00", exact_max_scaled_residual=0.0,
                exact_max_lambda=1.0, exact_seconds=0.1, seconds=1.0, exact_converged=True, backend="smm")
    outcomes = [
        stress.StressOutcome(seed=1, target_gap=0.001, converged=True, warnings=[], **base),
        stress.StressOutcome(seed=2, target_gap=0.1, converged=False, warnings=["smm: not converged"], **base),
        stress.StressOutcome(seed=3, target_gap=0.1, converged=True, warnings=[], **base),
    ]
    summary = stress.summarise(outcomes)
    assert summary["n_within"] == 1 and summary["n_flagged"] == 1
    assert summary["n_outside_and_flagged"] == 1 and summary["n_outside_unflagged"] == 1
    assert [m["seed"] for m in summary["outside_unflagged"]] == [3]
    assert summary["target_gap"]["max"] == pytest.approx(0.1)
    assert "NOT flagged: 1" in stress.markdown(summary, "smm", {})
    assert attrs.asdict(outcomes[0])["seed"] == 1


def test_target_gap_is_the_harness_metric(stress):
    """``|dP(target)|`` is harness.target_difference: a continuous target's rescaled mean (a shift by one of
    21 bins counts 1/21, not the largest bin's change of 1), a binary target's P(true)."""
    problems = [stress.stress_problem(seed) for seed in range(6)]
    by_type = {p.variables[0]["type"]: p for p in problems}
    continuous, binary = by_type["continuous"], by_type["binary"]

    def info(problem, marginal, edges):
        name = problem.target_variable
        return {"marginals": {name: list(marginal)}, "bin_edges_list": [list(edges)], "variable_names": [name]}

    edges = np.linspace(100.0, 310.0, 22)
    low, high = np.eye(21)[3], np.eye(21)[4]
    assert stress.target_gap(continuous, info(continuous, high, edges), info(continuous, low, edges)) == \
        pytest.approx(1 / 21)
    fitted, exact = info(binary, [0.3, 0.7], [0.0, 0.5, 1.0]), info(binary, [0.4, 0.6], [0.0, 0.5, 1.0])
    assert stress.target_gap(binary, fitted, exact) == pytest.approx(0.1)


def test_compare_reads_the_target_from_the_fits(stress):
    """The comparison runs end to end on a tiny problem (maxent against itself: every gap 0)."""
    from calibrated_response_plugins import installed_backends

    if "maxent" not in installed_backends():
        pytest.skip("the maxent backend is not installed")
    problem = stress.StressProblem(0, [
        {"name": "x0_level", "description": "x", "type": "continuous", "lower_bound": 0.0, "upper_bound": 100.0},
        {"name": "b1_event", "description": "b", "type": "binary"},
    ], [
        {"estimate_type": "expectation", "id": "e0", "variable": "x0_level", "expected_value": 30.0,
         "relation": "eq", "sd": None, "n": None},
        {"estimate_type": "probability", "id": "e1", "probability": 0.2, "relation": "eq", "sd": None, "n": None,
         "proposition": {"proposition_type": "equality", "variable": "b1_event", "variable_type": "binary",
                         "value": True}},
    ], max_bins=7, tags=[])
    outcome = stress.compare(problem, "maxent")
    assert outcome.target_gap == outcome.marginal_gap == outcome.residual_gap == 0.0
    assert outcome.within and outcome.n_joint_states == 14
