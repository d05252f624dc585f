"""Every estimate kind maps to the expected SMM targets, or to an explicit skip."""

from __future__ import annotations

import numpy as np
import pytest
from calibrated_response_plugins.compiler import compile_problem
from calibrated_response_plugins.config import CoreConfig
from calibrated_response_smm.adapters import graph_from_constraints
from calibrated_response_smm.features import build_layout
from calibrated_response_smm.targets import moment_objective

VARIABLES = [
    {"name": "rain", "type": "binary"},
    {"name": "wind", "type": "binary"},
    {"name": "temp", "type": "continuous", "lower_bound": 0.0, "upper_bound": 40.0},
]


def eq(var, value=True):
    return {"proposition_type": "equality", "variable": var, "variable_type": "binary", "value": value}


def gt(var, threshold):
    return {"proposition_type": "inequality", "variable": var, "variable_type": "continuous",
            "threshold": threshold, "is_lower_bound": True}


def adapt(*estimates, max_bins=4, **core):
    constraints = compile_problem(VARIABLES, list(estimates), CoreConfig(max_bins=max_bins, **core))
    return graph_from_constraints(constraints)


def test_probability_is_a_unary_indicator():
    adapted = adapt({"id": "p", "estimate_type": "probability", "probability": 0.3, "proposition": eq("rain")})
    (target,) = adapted.targets.constraints
    assert adapted.graph.factors[target.factor_id].var_ids == (0,)
    np.testing.assert_allclose(target.feature, [0.0, 1.0])
    assert target.target == pytest.approx(0.3) and target.relation == "eq"


def test_expectation_is_the_rescaled_value():
    adapted = adapt({"id": "e", "estimate_type": "expectation", "variable": "temp", "expected_value": 10.0})
    (target,) = adapted.targets.constraints
    np.testing.assert_allclose(target.feature, [0.125, 0.375, 0.625, 0.875])  # bin centres / 40
    assert target.target == pytest.approx(0.25)


def test_conditional_probability_is_centred_pairwise():
    adapted = adapt({"id": "c", "estimate_type": "conditional_probability", "probability": 0.8,
                     "proposition": eq("rain"), "conditions": [eq("wind")]})
    (target,) = adapted.targets.constraints
    assert adapted.graph.factors[target.factor_id].var_ids == (0, 1)
    # w(rain and wind) - 0.8 w(wind), target 0
    np.testing.assert_allclose(target.feature, [[0.0, -0.8], [0.0, 0.2]])
    assert target.target == 0.0


def test_conditional_expectation_is_centred():
    adapted = adapt({"id": "ce", "estimate_type": "conditional_expectation", "variable": "temp",
                     "expected_value": 20.0, "conditions": [eq("rain")]})
    (target,) = adapted.targets.constraints
    u = np.array([0.125, 0.375, 0.625, 0.875])
    np.testing.assert_allclose(target.feature, np.stack([np.zeros(4), u - 0.5]))


def test_shared_scopes_share_a_factor_and_keep_input_order():
    adapted = adapt(
        {"id": "a", "estimate_type": "probability", "probability": 0.3, "proposition": eq("rain")},
        {"id": "b", "estimate_type": "probability", "probability": 0.6, "proposition": gt("temp", 20.0)},
        {"id": "c", "estimate_type": "probability", "probability": 0.2, "proposition": eq("rain", False),
         "relation": "ge"},
    )
    assert adapted.factor_of == (0, 1, 0)
    assert len(adapted.graph.factors) == 2
    objective = moment_objective(build_layout(adapted.graph), adapted.targets)
    assert float(objective.lower[2]) == 0.0 and np.isinf(float(objective.upper[2]))
    assert np.isinf(float(objective.lower[0])) and np.isinf(float(objective.upper[0]))


def test_le_relation_bounds_the_multiplier_above():
    adapted = adapt({"id": "cap", "estimate_type": "probability", "probability": 0.1, "relation": "le",
                     "proposition": gt("temp", 30.0)})
    objective = moment_objective(build_layout(adapted.graph), adapted.targets)
    assert float(objective.upper[0]) == 0.0 and np.isinf(float(objective.lower[0]))


@pytest.mark.parametrize(
    "estimate, reason",
    [
        ({"id": "corr", "estimate_type": "correlation", "variable_a": "rain", "variable_b": "rain",
          "correlation": 0.3}, "itself"),
        ({"id": "imp", "estimate_type": "probability", "probability": 0.2, "proposition": gt("temp", 50.0)},
         "impossible"),
        ({"id": "far", "estimate_type": "expectation", "variable": "temp", "expected_value": 55.0}, "temp"),
    ],
)
def test_unusable_estimates_are_skipped_with_a_reason(estimate, reason):
    adapted = adapt(estimate)
    assert adapted.targets.constraints == ()
    (skip,) = adapted.skipped
    assert skip.startswith(estimate["id"] + ":") and reason in skip


def test_scope_above_max_arity_is_skipped():
    estimate = {"id": "big", "estimate_type": "conditional_probability", "probability": 0.5,
                "proposition": eq("rain"), "conditions": [eq("wind"), gt("temp", 10.0)]}
    adapted = adapt(estimate, max_arity=2)
    assert adapted.targets.constraints == () and adapted.skipped[0].startswith("big:")
    kept = adapt(estimate, max_arity=3)
    assert adapted.graph.n_vars == 3 and kept.graph.factors[0].var_ids == (0, 1, 2)


def test_a_scope_wider_than_the_backend_fits_is_skipped_with_a_reason():
    """``max_arity=4`` lets the core keep a 4-variable scope; smm's layout fits 3, so it is skipped."""
    from calibrated_response_plugins import DistributionBuilder

    variables = VARIABLES + [{"name": "fog", "type": "binary"}]
    estimates = [
        {"id": "p_rain", "estimate_type": "probability", "probability": 0.3, "proposition": eq("rain")},
        {"id": "p_all", "estimate_type": "conditional_probability", "probability": 0.5, "proposition": eq("rain"),
         "conditions": [eq("wind"), eq("fog"), gt("temp", 20.0)]},
    ]
    builder = DistributionBuilder(variables, estimates, backend="smm", config={"max_arity": 4, "max_bins": 4})
    constraints = builder.compile()
    assert [c.id for c in constraints.constraints] == ["p_rain"]
    assert constraints.skipped == ("p_all: mentions 4 variables, more than the backend fits "
                                   "(SMMConfig.supported_arity=3)",)
    graph_from_constraints(constraints)  # what the backend receives builds without error
