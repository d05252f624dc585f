"""The constraint compiler against hand-computed feature tables (docs/semantics.md)."""

import numpy as np
import pytest

from calibrated_response_plugins import CoreConfig, compile_problem
from calibrated_response_plugins.compiler import truth_value

# Hand-computed tables are sums and ratios of a few decimals; 1e-12 is float64 round-off.
EXACT = 1e-12

BIN = {"name": "rain", "description": "", "type": "binary"}
BIN2 = {"name": "wind", "description": "", "type": "binary"}
CONT = {"name": "x", "description": "", "type": "continuous", "lower_bound": 0.0, "upper_bound": 4.0}
CONFIG = CoreConfig(max_bins=4)  # x has bins [0,1],[1,2],[2,3],[3,4], centres 0.5..3.5


def eq(variable, value=True):
    return {"proposition_type": "equality", "variable": variable, "variable_type": "binary", "value": value}


def gt(variable, threshold):
    return {"proposition_type": "inequality", "variable": variable, "variable_type": "continuous",
            "threshold": threshold, "is_lower_bound": True}


def lt(variable, threshold):
    return {**gt(variable, threshold), "is_lower_bound": False}


def prob(event, p, id="e", **extra):
    return {"id": id, "estimate_type": "probability", "proposition": event, "probability": p, **extra}


def cprob(event, conditions, p, id="e", **extra):
    return {"id": id, "estimate_type": "conditional_probability", "proposition": event,
            "conditions": conditions, "probability": p, **extra}


def expect(variable, mu, id="e", **extra):
    return {"id": id, "estimate_type": "expectation", "variable": variable, "expected_value": mu, **extra}


def cexpect(variable, conditions, mu, id="e", **extra):
    return {"id": id, "estimate_type": "conditional_expectation", "variable": variable,
            "conditions": conditions, "expected_value": mu, **extra}


def only(estimates, variables=(BIN, CONT), config=CONFIG):
    compiled = compile_problem(list(variables), estimates, config)
    assert compiled.skipped == (), compiled.skipped
    assert len(compiled.constraints) == 1
    return compiled.constraints[0]


def skip_reason(estimate, variables=(BIN, BIN2, CONT), config=CONFIG):
    compiled = compile_problem(list(variables), [estimate], config)
    assert compiled.constraints == ()
    (reason,) = compiled.skipped
    return reason


def test_domains():
    compiled = compile_problem([BIN, CONT], [], CONFIG)
    rain, x = compiled.domains
    np.testing.assert_array_equal(rain.values, [0, 1])
    np.testing.assert_array_equal(rain.bin_edges, [0, 0.5, 1])
    np.testing.assert_array_equal(x.bin_edges, [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(x.values, [0.5, 1.5, 2.5, 3.5])
    assert compile_problem([CONT], []).domains[0].n_states == 21  # the default max_bins


def test_probability_of_binary_equality():
    c = only([prob(eq("rain"), 0.3)])
    assert c.scope == (0,) and c.target == 0.3 and c.relation == "eq"
    np.testing.assert_allclose(c.feature, [0, 1], atol=EXACT)
    c = only([prob(eq("rain", False), 0.3)])
    np.testing.assert_allclose(c.feature, [1, 0], atol=EXACT)


@pytest.mark.parametrize("value, expected", [
    (True, True), (False, False), (1, True), (0, False), ("true", True), ("False", False),
    ("YES", True), ("no", False), ("maybe", None), (2, None),
])
def test_truth_values(value, expected):
    assert truth_value(value) is expected


def test_probability_of_fractional_inequality():
    # X > 1.25 on bins [0,1],[1,2],[2,3],[3,4]: fractions 0, 0.75, 1, 1.
    c = only([prob(gt("x", 1.25), 0.6)])
    assert c.scope == (1,)
    np.testing.assert_allclose(c.feature, [0, 0.75, 1, 1], atol=EXACT)
    c = only([prob(lt("x", 1.25), 0.4)])
    np.testing.assert_allclose(c.feature, [1, 0.25, 0, 0], atol=EXACT)


def test_binary_inequalities_are_strict():
    np.testing.assert_allclose(only([prob(gt("rain", 0), 0.3)]).feature, [0, 1], atol=EXACT)
    np.testing.assert_allclose(only([prob(lt("rain", 1), 0.3)]).feature, [1, 0], atol=EXACT)
    assert "impossible" in skip_reason(prob(gt("rain", 1), 0.3))


def test_expectation_is_rescaled():
    c = only([expect("x", 3.0)])
    np.testing.assert_allclose(c.feature, [0.125, 0.375, 0.625, 0.875], atol=EXACT)
    assert c.target == pytest.approx(0.75, abs=EXACT)
    assert (c.report_offset, c.report_scale) == (0.0, 4.0)


def test_conditional_probability_is_centred():
    # P(rain | x > 2.5) = 0.8: g = w(rain and x>2.5) - 0.8 w(x>2.5), c = 0.
    c = only([cprob(eq("rain"), [gt("x", 2.5)], 0.8)])
    assert c.scope == (0, 1) and c.target == 0.0
    given = np.array([[0, 0, 0.5, 1], [0, 0, 0.5, 1]])
    joint = np.array([[0, 0, 0, 0], [0, 0, 0.5, 1]])
    np.testing.assert_allclose(c.feature, joint - 0.8 * given, atol=EXACT)
    np.testing.assert_allclose(c.report_numerator, joint, atol=EXACT)
    np.testing.assert_allclose(c.report_denominator, given, atol=EXACT)
    assert c.report_target == 0.8


def test_conditional_expectation_is_centred():
    # E[x | rain] = 3: g = w_rain (u_x - 0.75).
    c = only([cexpect("x", [eq("rain")], 3.0)])
    u = np.array([0.125, 0.375, 0.625, 0.875])
    np.testing.assert_allclose(c.feature, np.outer([0, 1], u - 0.75), atol=EXACT)
    np.testing.assert_allclose(c.report_numerator, np.outer([0, 1], u), atol=EXACT)
    assert c.reported(0.3 * 0.7, 0.3) == pytest.approx(2.8)  # E[u | rain] = 0.7 -> 2.8


def test_conjunction_and_same_variable_intersection():
    # P(rain | x > 1.5 and x < 3.5 and wind): x weights 0, .5, 1, .5; scope (rain, wind, x).
    c = only([cprob(eq("rain"), [gt("x", 1.5), lt("x", 3.5), eq("wind")], 0.5)],
             variables=(BIN, BIN2, CONT))
    assert c.scope == (0, 1, 2)
    x = np.array([0, 0.5, 1, 0.5])
    given = np.multiply.outer(np.outer([1, 1], [0, 1]), x)
    joint = np.multiply.outer(np.outer([0, 1], [0, 1]), x)
    np.testing.assert_allclose(c.feature, joint - 0.5 * given, atol=EXACT)


def test_event_and_condition_on_the_same_variable_intersect():
    # P(x > 2.5 | x > 1.5): joint weights 0, 0, .5, 1; given 0, .5, 1, 1.
    c = only([cprob(gt("x", 2.5), [gt("x", 1.5)], 0.7)])
    np.testing.assert_allclose(c.report_numerator, [0, 0, 0.5, 1], atol=EXACT)
    np.testing.assert_allclose(c.report_denominator, [0, 0.5, 1, 1], atol=EXACT)


def test_relations_and_regularisation():
    c = only([prob(eq("rain"), 0.2, relation="le")])
    assert c.relation == "le" and c.s2 == 1e-3
    # An sd on a probability is in log-odds: s = sd p (1 - p) = 0.5 * 0.2 * 0.8.
    assert only([prob(eq("rain"), 0.2, sd=0.5)]).s2 == pytest.approx(0.08**2, abs=EXACT)
    # An sd on an expectation is scaled by the domain span 4.
    assert only([expect("x", 2.0, sd=1.0)]).s2 == pytest.approx(1 / 16, abs=EXACT)
    assert only([expect("x", 2.0)], config=CoreConfig(max_bins=4, l2_regularization=0.01)).s2 == 0.01
    compiled = compile_problem([BIN], [prob(eq("rain"), 0.2, relation="ge"), prob(eq("rain"), 0.3, relation="le")])
    assert compiled.lambda_bounds() == [(0.0, None), (None, 0.0)]


def test_rare_event_mean_is_kept_with_a_warning():
    compiled = compile_problem([CONT], [expect("x", 0.2)], CONFIG)
    assert len(compiled.constraints) == 1
    (warning,) = compiled.warnings
    assert warning.startswith("e: expected value 0.2 lies beyond the outermost bin centres")


@pytest.mark.parametrize("estimate, reason", [
    (prob(gt("x", 5), 0.5), "e: event 'x > 5' is impossible on 'x' on [0, 4]"),
    (prob(gt("x", -1), 0.5), "e: event 'x > -1' is certain on 'x' on [0, 4]"),
    (cprob(eq("rain"), [lt("x", 0)], 0.5), "e: condition 'x < 0' is impossible on 'x' on [0, 4]"),
    (cprob(eq("rain"), [lt("x", 9)], 0.5), "e: condition 'x < 9' is certain on 'x' on [0, 4]"),
    (cprob(eq("rain"), [gt("x", 3), lt("x", 1)], 0.5),
     "e: the conditions 'x > 3' and 'x < 1' cannot hold together"),
    (cprob(eq("rain"), [eq("rain", False)], 0.5),
     "e: event 'rain = True' cannot hold together with 'rain = False'"),
    (cprob(gt("x", 1), [gt("x", 2)], 0.5), "e: event 'x > 1' is certain given 'x > 2'"),
    (prob(eq("x", True), 0.5), "e: equality proposition 'x = True' on continuous 'x' on [0, 4] is not supported"),
    (prob(eq("rain", "perhaps"), 0.5), "e: equality value 'perhaps' on binary 'rain' is not a truth value"),
    (prob(eq("snow"), 0.5), "e: refers to unknown variable 'snow'"),
    (expect("x", 4.5), "e: expected value 4.5 lies outside the range [0, 4] that 'x' on [0, 4] can take here"),
    (cexpect("x", [gt("x", 2)], 1.0),
     "e: expected value 1 lies outside the range [2, 4] that 'x' on [0, 4] can take here"),
    (cprob(eq("rain"), [eq("wind"), gt("x", 2)], 0.5), "e: mentions 3 variables, more than max_arity=2"),
    ({"id": "e", "estimate_type": "correlation", "variable_a": "x", "variable_b": "x", "correlation": 0.3},
     "e: a correlation of variable 'x' with itself is always 1"),
    ({"id": "e", "estimate_type": "equation", "lhs": "x", "rhs": "2*rain"},
     "e: estimate_type 'equation' is not supported by the moment compiler"),
])
def test_skip_reasons(estimate, reason):
    config = CoreConfig(max_bins=4, max_arity=2)
    assert skip_reason(estimate, config=config) == reason


def test_skips_keep_input_order():
    estimates = [prob(gt("x", 9), 0.1, id="a"), prob(eq("rain"), 0.5, id="b"), prob(eq("snow"), 0.1, id="c")]
    compiled = compile_problem([BIN, CONT], estimates, CONFIG)
    assert [s.split(":")[0] for s in compiled.skipped] == ["a", "c"]
    assert [c.id for c in compiled.constraints] == ["b"]


def test_a_backend_declared_arity_limits_the_scopes_kept():
    """A config class's ``supported_arity`` skips wider scopes even where ``max_arity`` allows them."""
    import attrs

    @attrs.frozen(kw_only=True)
    class PairsOnly(CoreConfig):
        supported_arity = 2

    variables = [{"name": n, "type": "binary"} for n in "abc"]
    estimates = [{"id": "p_a_given_bc", "estimate_type": "conditional_probability", "probability": 0.5,
                  "proposition": {"proposition_type": "equality", "variable": "a", "value": True},
                  "conditions": [{"proposition_type": "equality", "variable": v, "value": True} for v in "bc"]}]
    assert compile_problem(variables, estimates, CoreConfig()).skipped == ()
    assert compile_problem(variables, estimates, PairsOnly(max_arity=5)).skipped == (
        "p_a_given_bc: mentions 3 variables, more than the backend fits (PairsOnly.supported_arity=2)",)
