"""Bad and extreme input: every case a named error, a skip with a reason, or a finite answer.

One test (or parameter) per class of defect found by fuzzing; the limits are those of
docs/limits.md.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from calibrated_response_maxent.config import MaxentConfig
from calibrated_response_plugins import DistributionBuilder, ModelInputError, compile_problem, problem_from_dict
from calibrated_response_plugins import cli
from calibrated_response_plugins.builder import constraint_report, report_warnings
from calibrated_response_plugins.compiler import MAX_S2, MAX_TABLE_CELLS, MIN_S2
from calibrated_response_plugins.config import CoreConfig, config_from_options
from calibrated_response_plugins.constraints import FitResult
from calibrated_response_plugins.models import coerce_estimate, coerce_variable
from calibrated_response_plugins.testing import CONFORMANCE_PROBLEM
from calibrated_response_smm.config import SMMConfig
from calibrated_response_plugins import dual

HUGE = 10**400  # an integer JSON reads exactly and float() cannot hold


def problem(changes=None):
    """A deep copy of the conformance problem; ``changes`` map ``(index, field)`` of an estimate to a value."""
    data = copy.deepcopy(CONFORMANCE_PROBLEM)
    for (index, field), value in (changes or {}).items():
        data["estimates"][index][field] = value
    return data


def estimate(index: int) -> dict:
    return copy.deepcopy(CONFORMANCE_PROBLEM["estimates"][index])


def binary(name="rain"):
    return {"name": name, "type": "binary"}


def p_true(estimate_id, p, **fields):
    return {"id": estimate_id, "estimate_type": "probability", "probability": p,
            "proposition": {"variable": "rain", "value": True}, **fields}


# ---------------------------------------------------------------- 1. huge integers


@pytest.mark.parametrize("field", ["probability", "sd", "n"])
def test_integers_beyond_float_range_are_named(field):
    with pytest.raises(ModelInputError, match=f"estimate 'p_rain': field '{field}' must be a finite number"):
        coerce_estimate({**estimate(0), field: HUGE})


def test_huge_integer_bound_and_threshold_are_named():
    with pytest.raises(ModelInputError, match="variable 't': field 'upper_bound' must be a finite number"):
        coerce_variable({"name": "t", "type": "continuous", "lower_bound": 0, "upper_bound": HUGE})
    condition = {"variable": "t", "threshold": -HUGE, "is_lower_bound": True}
    with pytest.raises(ModelInputError, match="estimate 'c': proposition on 't': field 'threshold'"):
        coerce_estimate({**estimate(2), "id": "c", "conditions": [condition]})


# ---------------------------------------------------------------- 2. and 7. sd limits


@pytest.mark.parametrize("sd", [1e155, 1e200, 1e308])
def test_an_sd_whose_square_overflows_is_held_at_the_largest_s2(sd):
    compiled = compile_problem(**_parts(problem({(0, "sd"): sd, (1, "sd"): sd})))
    assert compiled.constraints[0].s2 == MAX_S2 and compiled.constraints[1].s2 == MAX_S2


@pytest.mark.parametrize("sd", [0, 0.0, 1e-300])
def test_sd_zero_is_as_exact_as_the_floor(sd):
    compiled = compile_problem(**_parts(problem({(0, "sd"): sd, (1, "sd"): sd})))
    assert compiled.constraints[0].s2 == MIN_S2 and compiled.constraints[1].s2 == MIN_S2


def test_l2_zero_is_held_at_the_floor():
    compiled = compile_problem(**_parts(problem()), config=CoreConfig(l2_regularization=0.0))
    assert {c.s2 for c in compiled.constraints} == {MIN_S2}


def test_a_probability_of_one_with_an_sd_is_not_a_zero_variance():
    # sd * p * (1 - p) is 0 at p = 1: it used to give s^2 = 0.
    compiled = compile_problem([binary()], [p_true("p", 1.0, sd=0.5)])
    assert compiled.constraints[0].s2 == MIN_S2


def test_contradictory_exact_estimates_meet_halfway_with_finite_multipliers():
    # Two sd=0 estimates of one binary event, 0.3 and 0.7, with equal s^2: by symmetry the
    # optimum is P = 0.5 exactly (sigmoid(lambda_1 + lambda_2) = 0.5 with lambda_1 = -lambda_2).
    # Tolerance 1e-6: the solver's gtol (1e-8) on the dual gradient, times the Hessian scale.
    builder = DistributionBuilder([binary()], [p_true("lo", 0.3, sd=0), p_true("hi", 0.7, sd=0)], backend="maxent")
    _, info = builder.build(progress=False)
    assert info["converged"]
    assert info["marginals"]["rain"][1] == pytest.approx(0.5, abs=1e-6)
    # At the optimum |lambda| = 0.2 / s^2.
    for row in info["constraint_report"]:
        assert abs(row["lambda"]) == pytest.approx(0.2 / MIN_S2, rel=1e-3)
    assert info["n_iterations"] < 200


def test_sd_zero_on_a_real_case_gives_a_finite_report(shared_cases):
    data = json.loads((shared_cases[0].parent / "fbarch_tiny_20.json").read_text())
    for index in range(len(data["estimates"])):
        changed = copy.deepcopy(data)
        changed["estimates"][index]["sd"] = 0
        parsed = problem_from_dict(changed)
        _, info = DistributionBuilder(parsed.variables, parsed.estimates, backend="maxent").build(progress=False)
        assert info["converged"], index
        for row in info["constraint_report"]:
            assert all(v is None or math.isfinite(v) for v in (row["fitted"], row["residual"], row["lambda"]))
            assert row["fitted"] is not None or report_warnings([row])[0] in info["warnings"]


def test_an_undefined_conditional_is_reported_as_none_with_a_warning():
    compiled = compile_problem(**_parts(problem()))
    k = len(compiled.constraints)
    report_means = np.tile([0.0, 0.0], (k, 1))  # every denominator 0: P(C) = 0 under the fit
    fitted = FitResult(lambdas=np.zeros(k), feature_means=np.zeros(k), report_means=report_means,
                       marginals={}, converged=True, n_iterations=0, n_factors=0)
    rows = constraint_report(compiled, fitted)
    assert all(row["fitted"] is None and row["residual"] is None for row in rows)
    assert report_warnings(rows)[0] == f"{rows[0]['id']}: no fitted value: its condition has probability 0 under the fit"


# ---------------------------------------------------------------- 3. structural types


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(variables=None), "problem: field 'variables' must be a list, got None"),
    (lambda d: d.update(estimates=5), "problem: field 'estimates' must be a list, got 5"),
    (lambda d: d.update(variables="abc"), "problem: field 'variables' must be a list"),
    (lambda d: d["estimates"][2].update(conditions=5), "estimate 'p_fest_rain': field 'conditions' must be a list"),
    (lambda d: d["variables"][0].update(type=["binary"]), "variable 'festival': field 'type' must be 'binary' or"),
    (lambda d: d["estimates"][0].update(estimate_type=["probability"]), "estimate 'p_rain': unknown estimate_type"),
    (lambda d: d["estimates"][0]["proposition"].update(proposition_type={}), "estimate 'p_rain': field 'proposition_type'"),
    (lambda d: d["estimates"][0].update(relation=["eq"]), "estimate 'p_rain': field 'relation'"),
])
def test_wrong_structural_types_are_named(change, message):
    data = problem()
    change(data)
    with pytest.raises(ModelInputError, match=message):
        problem_from_dict(data)


def test_builder_refuses_a_non_list_of_variables():
    with pytest.raises(ModelInputError, match="field 'variables' must be a list"):
        DistributionBuilder(None, [], backend="maxent")


# ---------------------------------------------------------------- 4. and 10. config


@pytest.mark.parametrize("options, message", [
    ([1], "config must be a mapping"),
    ("abc", "config must be a mapping"),
    ({1: 2, "a": 3}, "config option names must be strings"),
    ({"max_bins": HUGE}, "'max_bins' must be at most 1000"),
    ({"seed": 2**64}, "'seed' must be at most"),
    ({"l2_regularization": "a"}, "'l2_regularization' must be a finite number"),
    ({"max_states": 10**12}, "'max_states' must be at most 100000000"),
])
def test_core_configs_of_the_wrong_shape_are_value_errors(options, message):
    with pytest.raises(ValueError, match=message):
        config_from_options(MaxentConfig, options)


@pytest.mark.parametrize("options, message", [
    ({"scope_threshold": "a"}, "'scope_threshold' must be a finite number >= 0"),
    ({"temperature": 1e-30}, "'temperature' must be at least 0.01"),
    ({"temperature": 1e30}, "'temperature' must be at most 100"),
    ({"max_bins": 500}, "'max_bins' must be at most 200"),
    ({"mcmc_steps_per_iteration": 10**6}, "'mcmc_steps_per_iteration' must be at most 100000"),
    ({"final_sweeps": 10**9}, "'final_sweeps' must be at most"),
    ({"burn_in_sweeps": 10**9}, "'burn_in_sweeps' must be at most"),
    ({"logit_clip": 1e300}, "'logit_clip' must be at most"),
    ({"learning_rate": 1e300}, "'learning_rate' must be at most"),
])
def test_smm_settings_that_cannot_finish_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        config_from_options(SMMConfig, options)


def test_a_chunk_longer_than_the_search_is_clamped():
    assert SMMConfig(chunk_size=10**6, num_iterations=20).chunk_size == 20
    assert SMMConfig(chunk_size=1000, mcmc_steps_per_iteration=1000).chunk_size == 100
    assert SMMConfig().chunk_size == 10


def test_a_scope_with_too_large_a_table_is_skipped():
    variables = [{"name": n, "type": "continuous", "lower_bound": 0, "upper_bound": 1} for n in "wxyz"]
    conditions = [{"variable": n, "threshold": 0.5, "is_lower_bound": True} for n in "xyz"]
    conditional = {"id": "big", "estimate_type": "conditional_expectation", "variable": "w", "expected_value": 0.4,
                   "conditions": conditions}
    compiled = compile_problem(variables, [conditional], CoreConfig(max_bins=50, max_arity=4))
    assert compiled.skipped == (
        f"big: its table over 4 variables would have 6,250,000 cells, more than {MAX_TABLE_CELLS:,}; "
        "use fewer bins (max_bins)",
    )


# ---------------------------------------------------------------- 5. and 6. bounds


@pytest.mark.parametrize("lower, upper, message", [
    (-1e308, 1e308, "exceed the largest supported magnitude 1e\\+150"),
    (0.0, 1e151, "exceed the largest supported magnitude"),
    (1e15, 1e15 + 0.5, "too narrow to be binned"),
    (0.0, 5e-324, "too narrow to be binned"),
    (0.0, 1e-151, "too narrow to be binned"),
])
def test_bounds_the_binning_cannot_represent_name_the_variable(lower, upper, message):
    with pytest.raises(ModelInputError, match=f"variable 't': .*{message}"):
        coerce_variable({"name": "t", "type": "continuous", "lower_bound": lower, "upper_bound": upper})


def _scaled_mean_fit(lower, upper):
    variable = {"name": "t", "type": "continuous", "lower_bound": lower, "upper_bound": upper}
    mean = {"id": "m", "estimate_type": "expectation", "variable": "t", "expected_value": lower + 0.3 * (upper - lower)}
    histogram, info = DistributionBuilder([variable], [mean], backend="maxent").build(progress=False)
    assert np.all(np.isfinite(info["bin_edges_list"][0])) and math.isfinite(histogram.std())
    return info["constraint_report"][0]["scaled_residual"], np.array(info["marginals"]["t"])


def test_the_widest_and_narrowest_allowed_ranges_fit_like_the_unit_range():
    # The compiled problem is the same in rescaled units whatever the range, so the fit on
    # [0, 1] is the exact reference; 1e-6 allows for the edges' rounding at 1e-9 relative spans.
    reference_residual, reference = _scaled_mean_fit(0.0, 1.0)
    for lower, upper in ((-1e150, 1e150), (1e15, 1e15 + 2e6), (0.0, 1e-150)):
        residual, marginal = _scaled_mean_fit(lower, upper)
        assert residual == pytest.approx(reference_residual, abs=1e-6)
        np.testing.assert_allclose(marginal, reference, atol=1e-6)


def test_a_condition_narrower_than_a_float_step_is_skipped():
    data = problem()
    data["estimates"][3]["conditions"].append({"variable": "temperature", "threshold": 25.0 + 3.5e-15,
                                                "is_lower_bound": False})
    compiled = compile_problem(**_parts(data))
    assert any(s.startswith("p_fest_warm: the conditions") and "cannot hold together" in s for s in compiled.skipped)


# ---------------------------------------------------------------- 8. smm polish


def test_the_polish_solves_a_singular_newton_system():
    hessian = np.array([[1.0, 1.0], [1.0, 1.0]])  # contradictory exact estimates on one feature
    direction = dual.newton_direction(hessian, np.array([-0.2, 0.2]), np.array([True, True]))
    assert np.all(np.isfinite(direction))
    np.testing.assert_allclose(direction, [0.0, 0.0], atol=1e-12)  # least squares: the gradients cancel


# ---------------------------------------------------------------- 12. silent misreads


@pytest.mark.parametrize("key", ["is_lower_bound", "greater"])
@pytest.mark.parametrize("value", ["false", "no", "0", "true", None, [], 2])
def test_directions_must_be_real_booleans(key, value):
    data = estimate(3)
    data["conditions"] = [{"variable": "temperature", "threshold": 25.0, key: value}]
    if value is None:
        message = "missing field 'is_lower_bound'"
    else:
        message = "estimate 'p_fest_warm': proposition on 'temperature': field 'is_lower_bound' must be true or false"
    with pytest.raises(ModelInputError, match=message):
        coerce_estimate(data)


@pytest.mark.parametrize("value, expected", [(True, True), (False, False), (1, True), (0, False),
                                             (np.bool_(False), False)])
def test_booleans_and_zero_one_integers_are_read_as_directions(value, expected):
    data = estimate(3)
    data["conditions"] = [{"variable": "temperature", "threshold": 25.0, "is_lower_bound": value}]
    assert coerce_estimate(data).conditions[0].is_lower_bound is expected


@pytest.mark.parametrize("missing", ["lower_bound", "upper_bound"])
def test_a_continuous_variable_needs_both_bounds(missing):
    variable = {"name": "t", "type": "continuous", "lower_bound": 0.0, "upper_bound": 10.0}
    del variable[missing]
    with pytest.raises(ModelInputError, match=f"variable 't': missing field '{missing}'"):
        coerce_variable(variable)


@pytest.mark.parametrize("text", [" 0.25 ", "0.25", "\u0660.\u0662\u0665"])
def test_numeric_strings_are_not_numbers(text):
    with pytest.raises(ModelInputError, match="estimate 'p_rain': field 'probability' must be a finite number"):
        coerce_estimate({**estimate(0), "probability": text})


def test_proposition_errors_name_the_estimate():
    data = estimate(0)
    data["proposition"] = {"proposition_type": "equality", "variable": "rain", "value": None}
    with pytest.raises(ModelInputError, match="estimate 'p_rain': proposition on 'rain': field 'value' must be set"):
        coerce_estimate(data)


# ---------------------------------------------------------------- 11. command line


@pytest.mark.parametrize("name, raw, message", [
    ("huge.json", json.dumps(problem()).replace('"probability": 0.3', '"probability": 1' + "0" * 400),
     "estimate 'p_rain': field 'probability' must be a finite number"),
    ("digits.json", json.dumps(problem()).replace('"probability": 0.3', '"probability": 1' + "0" * 5000),
     "digits.json: unreadable JSON"),
    ("null.json", json.dumps({**problem(), "variables": None}), "field 'variables' must be a list"),
    ("deep.json", "[" * 100_000 + "]" * 100_000, "deep.json: JSON nested too deeply to read"),
])
def test_cli_bad_files_are_one_line_errors(tmp_path, capsys, name, raw, message):
    path = tmp_path / name
    path.write_text(raw, encoding="utf-8")
    assert cli.main(["fit", str(path), "--backend", "maxent", "--quiet"]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_cli_names_a_file_that_is_not_utf8(tmp_path, capsys):
    path = tmp_path / "latin1.json"
    path.write_bytes('{"question": "caf\u00e9"}'.encode("latin-1"))
    assert cli.main(["fit", str(path), "--backend", "maxent", "--quiet"]) == cli.EXIT_ERROR
    assert f"error: {path}: not UTF-8 text" in capsys.readouterr().err


def test_cli_fits_a_problem_with_a_huge_sd(tmp_path, capsys):
    path = tmp_path / "sd.json"
    path.write_text(json.dumps(problem({(1, "sd"): 1e200})), encoding="utf-8")
    assert cli.main(["fit", str(path), "--backend", "maxent", "--quiet"]) == 0
    assert "e_temp" in capsys.readouterr().out


def test_cli_config_values_that_cannot_be_read_are_named():
    with pytest.raises(ValueError, match="--config max_bins: value cannot be read"):
        cli.parse_config_options(["max_bins=1" + "0" * 5000])


def _parts(data):
    return {"variables": data["variables"], "estimates": data["estimates"]}


def test_smm_meets_contradictory_exact_estimates_halfway():
    # Exact reference 0.5 (see the maxent test above). Tolerance 0.01: the final estimate's
    # Monte Carlo standard error (512 chains, final_tolerance 3e-3) plus the float32 rounding of
    # multipliers of 2e5 (0.02 nats, 0.005 in P). The polish solved a singular system here.
    builder = DistributionBuilder([binary()], [p_true("lo", 0.3, sd=0), p_true("hi", 0.7, sd=0)], backend="smm",
                                  config={"num_chains": 512, "num_iterations": 40, "averaging_iterations": 20})
    _, info = builder.build(progress=False)
    assert info["marginals"]["rain"][1] == pytest.approx(0.5, abs=0.01)
    assert all(math.isfinite(row["fitted"]) for row in info["constraint_report"])


def test_maxent_leaves_a_saturated_valley_between_exact_estimates():
    # Found by benchmarks/fuzz.py: E[a] = 0.758 and P(a) = 0.265, both at the s^2 floor, plus a
    # loose (s^2 = 1e12) copy of the mean. L-BFGS-B stopped with P(a) = 1 (the joint saturated,
    # the Hessian s^2 alone) and halving Newton steps bounced between P(a) = 1 and 0.
    # Exact reference: the stationary point E = sigmoid((c1 + c2 - 2 E) / s^2), by bisection;
    # tolerance 1e-7 (gtol 1e-8 on the gradient, divided by the Hessian's ~0.25 curvature in P).
    c1, c2 = 0.7580819137776431, 0.2652643349956452
    low, high = 0.0, 1.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        fixed_point = 0.5 * (1.0 + math.tanh((c1 + c2 - 2 * middle) / (2 * MIN_S2)))  # the sigmoid
        low, high = (middle, high) if middle < fixed_point else (low, middle)
    estimates = [
        {"id": "loose", "estimate_type": "expectation", "variable": "rain", "expected_value": c1, "sd": 1e200},
        {"id": "mean", "estimate_type": "conditional_expectation", "variable": "rain", "expected_value": c1,
         "conditions": []},
        {"id": "p", "estimate_type": "conditional_probability", "probability": c2, "conditions": [],
         "proposition": {"variable": "rain", "value": True}},
    ]
    _, info = DistributionBuilder([binary()], estimates, backend="maxent",
                                  config={"l2_regularization": 0.0}).build(progress=False)
    assert info["converged"]
    assert info["marginals"]["rain"][1] == pytest.approx(low, abs=1e-7)
