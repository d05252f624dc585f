"""Models, coercion from dicts and upstream-like objects, JSON round trips, bad input."""

import json
import math
from types import SimpleNamespace

import pytest

from calibrated_response_plugins import (
    BinaryVariable,
    ConditionalProbabilityEstimate,
    ContinuousVariable,
    ModelInputError,
    compile_problem,
    load_problem,
    problem_from_dict,
    problem_to_dict,
)
from calibrated_response_plugins.models import coerce_estimate, coerce_variable
from calibrated_response_plugins.testing import CONFORMANCE_PROBLEM


def test_every_shared_case_loads_round_trips_and_compiles(shared_cases):
    assert len(shared_cases) == 240
    for path in shared_cases:
        raw = json.loads(path.read_text())
        problem = load_problem(path)
        assert problem_to_dict(problem) == raw, path.name
        again = problem_from_dict(json.loads(json.dumps(problem_to_dict(problem))))
        assert again == problem, path.name
        compiled = compile_problem(problem.variables, problem.estimates)
        accounted = len(compiled.constraints) + len(compiled.correlations) + len(compiled.skipped)
        assert accounted == len(problem.estimates), path.name


def test_estimates_without_relation_sd_n_get_defaults():
    estimate = coerce_estimate({"id": "a", "estimate_type": "expectation", "variable": "x", "expected_value": 2})
    assert (estimate.relation, estimate.sd, estimate.n) == ("eq", None, None)


def test_class_wrapper_is_unwrapped():
    inline = {"__class__": "calibrated_response.models.query.ProbabilityEstimate", "id": "a", "probability": 0.2,
              "proposition": {"variable": "rain", "value": True}}
    nested = {"__class__": "ConditionalProbabilityEstimate",
              "data": {"id": "b", "probability": 0.4, "proposition": {"variable": "rain", "value": True},
                       "conditions": [{"variable": "x", "threshold": 3.0, "is_lower_bound": False}]}}
    assert coerce_estimate(inline).estimate_type == "probability"
    b = coerce_estimate(nested)
    assert isinstance(b, ConditionalProbabilityEstimate) and b.conditions[0].is_lower_bound is False
    assert coerce_variable({"__class__": "BinaryVariable", "name": "rain", "type": "binary"}) == BinaryVariable("rain")


def test_upstream_objects_are_read_by_attribute():
    enum = SimpleNamespace  # upstream enums expose .value
    variable = SimpleNamespace(name="x", description="d", type=enum(value="continuous"), lower_bound=0,
                               upper_bound=10, unit="m")
    proposition = SimpleNamespace(proposition_type=enum(value="inequality"), variable="x",
                                  variable_type=enum(value="continuous"), threshold=5.0, greater=True)
    estimate = SimpleNamespace(id="p", estimate_type=enum(value="probability"), proposition=proposition,
                               probability=0.5, relation="eq", sd=None, n=None)
    assert coerce_variable(variable) == ContinuousVariable("x", "d", lower_bound=0.0, upper_bound=10.0, unit="m")
    compiled = compile_problem([variable], [estimate])
    assert compiled.constraints[0].id == "p"


@pytest.mark.parametrize("mutate, message", [
    (lambda e: e.update(estimate_type="median"), "estimate 'p_rain': unknown estimate_type 'median'"),
    (lambda e: e.update(probability=1.2), "estimate 'p_rain': field 'probability' must be in \\[0, 1\\]"),
    (lambda e: e.update(probability=-0.1), "estimate 'p_rain': field 'probability' must be in \\[0, 1\\]"),
    (lambda e: e.update(probability=math.nan), "estimate 'p_rain': field 'probability' must be a finite number"),
    (lambda e: e.update(probability="high"), "estimate 'p_rain': field 'probability' must be a finite number"),
    (lambda e: e.pop("probability"), "estimate 'p_rain': missing field 'probability'"),
    (lambda e: e.update(relation="approx"), "estimate 'p_rain': field 'relation' must be one of"),
    (lambda e: e.update(sd=-1.0), "estimate 'p_rain': field 'sd' must be >= 0"),
    (lambda e: e["proposition"].pop("variable"), "estimate 'p_rain' proposition: missing field 'variable'"),
])
def test_bad_estimates_are_named(mutate, message):
    estimate = json.loads(json.dumps(CONFORMANCE_PROBLEM["estimates"][0]))
    mutate(estimate)
    with pytest.raises(ModelInputError, match=message):
        coerce_estimate(estimate)


def test_infinite_expectation_is_named():
    with pytest.raises(ModelInputError, match="estimate 'e': field 'expected_value' must be a finite number"):
        coerce_estimate({"id": "e", "estimate_type": "expectation", "variable": "x", "expected_value": math.inf})


@pytest.mark.parametrize("variable, message", [
    ({"name": "x", "type": "continuous", "lower_bound": 5, "upper_bound": 5},
     "variable 'x': lower_bound \\(5.0\\) must be below upper_bound"),
    ({"name": "x", "type": "continuous", "lower_bound": 0, "upper_bound": math.inf},
     "variable 'x': field 'upper_bound' must be a finite number"),
    ({"name": "x", "type": "ordinal"}, "variable 'x': field 'type' must be 'binary' or 'continuous'"),
    ({"type": "binary"}, "variable: missing field 'name'"),
])
def test_bad_variables_are_named(variable, message):
    with pytest.raises(ModelInputError, match=message):
        coerce_variable(variable)


def test_duplicate_and_empty_variable_lists():
    with pytest.raises(ModelInputError, match="variable 'rain': duplicate variable name"):
        compile_problem([BinaryVariable("rain"), BinaryVariable("rain")], [])
    with pytest.raises(ModelInputError, match="empty"):
        compile_problem([], [])


def test_load_problem_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ModelInputError, match="not valid JSON"):
        load_problem(bad)
    bad.write_text(json.dumps({"variables": []}))
    with pytest.raises(ModelInputError, match="missing field 'estimates'"):
        load_problem(bad)
