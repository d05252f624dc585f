"""Correlation estimates in the core: compiling, skips, h and its linearisation, the outer loop."""

from __future__ import annotations

import attrs
import numpy as np
import pytest

from calibrated_response_plugins import DistributionBuilder, compile_problem
from calibrated_response_plugins.config import CoreConfig
from calibrated_response_plugins.constraints import FitResult
from calibrated_response_plugins.correlations import (
    NOISE_Z,
    correlation_of,
    h_gradient,
    h_value,
    linearised_constraint,
    moments_of,
    settled_within,
)
from calibrated_response_plugins.models import ModelInputError
from calibrated_response_plugins.registry import register_backend, unregister_backend
from calibrated_response_plugins.hookspecs import hookimpl
from calibrated_response_plugins.testing import UniformBackend

RAIN = {"name": "rain", "description": "", "type": "binary"}
WIND = {"name": "wind", "description": "", "type": "binary"}
X = {"name": "x", "description": "", "type": "continuous", "lower_bound": 0.0, "upper_bound": 4.0}
CONFIG = CoreConfig(max_bins=4)


def corr(a, b, r, id="c", **extra):
    return {"id": id, "estimate_type": "correlation", "variable_a": a, "variable_b": b, "correlation": r, **extra}


def prob_rain(p, id="p", relation="eq"):
    return {"id": id, "estimate_type": "probability", "probability": p, "relation": relation,
            "proposition": {"proposition_type": "equality", "variable": "rain", "variable_type": "binary",
                            "value": True}}


def test_compiled_correlation_has_rescaled_values_in_scope_order():
    compiled = compile_problem([RAIN, X], [corr("x", "rain", 0.3, sd=0.2)], CONFIG)
    (c,) = compiled.correlations
    assert compiled.constraints == () and compiled.skipped == ()
    assert c.scope == (0, 1) and c.names == ("rain", "x") and c.correlation == 0.3
    np.testing.assert_allclose(c.values[0], [0.0, 1.0])
    np.testing.assert_allclose(c.values[1], [0.125, 0.375, 0.625, 0.875])
    # Bins of width 1 on a span of 4: within-bin variance (1/4)^2 / 12.
    np.testing.assert_allclose(c.within[1], np.full(4, 1 / 192))
    np.testing.assert_allclose(c.within[0], 0.0)


@pytest.mark.parametrize("estimate, config, reason", [
    (corr("x", "x", 0.5), CONFIG, "c: a correlation of variable 'x' with itself is always 1"),
    (corr("x", "snow", 0.5), CONFIG, "c: refers to unknown variable 'snow'"),
    (corr("x", "rain", 0.5), CoreConfig(max_bins=4, max_arity=1), "c: mentions 2 variables, more than max_arity=1"),
])
def test_unusable_correlations_are_skipped_with_a_reason(estimate, config, reason):
    compiled = compile_problem([RAIN, X], [estimate], config)
    assert compiled.correlations == () and list(compiled.skipped) == [reason]


def test_correlation_outside_minus_one_one_names_the_estimate_and_field():
    with pytest.raises(ModelInputError, match="'c'.*'correlation'.*\\[-1, 1\\]"):
        compile_problem([RAIN, X], [corr("x", "rain", 1.2)], CONFIG)


@pytest.mark.parametrize("p, relation", [(1.0, "eq"), (0.0, "eq"), (1.0, "ge"), (0.0, "le")])
def test_correlation_with_a_variable_pinned_constant_is_skipped_in_input_order(p, relation):
    estimates = [prob_rain(p, relation=relation), corr("x", "rain", 0.5), prob_rain(0.5, id="q"),
                 {"id": "big", "estimate_type": "expectation", "variable": "x", "expected_value": 9.0}]
    compiled = compile_problem([RAIN, X], estimates, CONFIG)
    assert compiled.correlations == ()
    assert [s.split(":")[0] for s in compiled.skipped] == ["c", "big"]
    assert "variable 'rain' is constant under estimate(s) 'p'" in compiled.skipped[0]


def test_a_pinned_event_that_leaves_two_states_does_not_skip():
    estimates = [{"id": "p", "estimate_type": "probability", "probability": 1.0,
                  "proposition": {"proposition_type": "inequality", "variable": "x", "variable_type": "continuous",
                                  "threshold": 2.0, "is_lower_bound": True}},
                 corr("x", "rain", 0.5)]
    assert len(compile_problem([RAIN, X], estimates, CONFIG).correlations) == 1


# --------------------------------------------------------------------------- h


def pair_moments(joint, x, x2, y, y2):
    return np.array([joint.sum(1) @ x, joint.sum(1) @ x2, joint.sum(0) @ y, joint.sum(0) @ y2, x @ joint @ y])


def test_h_is_cov_minus_r_sd_sd_and_its_gradient_matches_finite_differences():
    rng = np.random.default_rng(3)
    m = pair_moments(rng.dirichlet(np.ones(8)).reshape(2, 4), np.array([0.0, 1.0]), np.array([0.0, 1.0]),
                     np.linspace(0.125, 0.875, 4), np.linspace(0.125, 0.875, 4) ** 2 + 1 / 192)
    var_x, var_y = m[1] - m[0] ** 2, m[3] - m[2] ** 2
    assert np.isclose(h_value(0.4, m), m[4] - m[0] * m[2] - 0.4 * np.sqrt(var_x * var_y))
    step = 1e-6
    numeric = [(h_value(0.4, m + step * e) - h_value(0.4, m - step * e)) / (2 * step) for e in np.eye(5)]
    # Central differences on a smooth function: error ~ step^2 times the third derivative.
    np.testing.assert_allclose(h_gradient(0.4, m), numeric, atol=1e-7)


def test_linearised_feature_reproduces_h_at_its_point():
    compiled = compile_problem([RAIN, X], [corr("rain", "x", -0.3)], CONFIG)
    (c,) = compiled.correlations
    joint = np.random.default_rng(1).dirichlet(np.ones(8)).reshape(2, 4)
    m = moments_of(c, [joint.sum(1), joint.sum(0)], float(np.sum(joint * np.outer(*c.values))))
    linear = linearised_constraint(c, m)
    # At the point of linearisation E[G] - target = h exactly (the first-order term is 0).
    assert np.isclose(np.sum(joint * linear.feature) - linear.target, h_value(-0.3, m))
    probe = linearised_constraint(c, None)
    assert not probe.feature.any() and np.isclose(np.sum(joint * probe.report_numerator), m[4])


def test_correlation_of_a_constant_is_zero_never_nan():
    assert correlation_of(np.array([1.0, 1.0, 0.5, 0.3, 0.5])) == 0.0


# --------------------------------------------------------------------------- the loop through a backend


def uniform_build(estimates, **backend):
    register_backend("uniform_corr", UniformBackend(**backend))
    try:
        builder = DistributionBuilder([RAIN, X], estimates, backend="uniform_corr", config={"max_bins": 4})
        return builder.build(target_variable="rain", progress=False)[1]
    finally:
        unregister_backend("uniform_corr")


def test_a_backend_without_refit_gets_fresh_fits():
    info = uniform_build([corr("rain", "x", 0.5)])
    # The uniform backend ignores every constraint: the moments never move, so round 2 settles.
    assert info["correlations"]["rounds"] == 2 and info["correlations"]["warm_rounds"] == 0
    (row,) = [r for r in info["constraint_report"] if r["estimate_type"] == "correlation"]
    assert row["target"] == 0.5 and row["fitted"] == 0.0 and row["residual"] == -0.5
    assert any("c: fitted correlation 0.000 misses the target eq 0.5" in w for w in info["warnings"])


def test_a_variable_the_fit_makes_constant_is_skipped_after_the_first_round():
    info = uniform_build([corr("rain", "x", 0.5)], marginal_override={"rain": np.array([0.0, 1.0])})
    assert info["skipped_constraints"] == [
        "c: variable 'rain' is constant under the other estimates (variance 0.0e+00 of its squared span), "
        "so its correlation is undefined"]
    assert all(r["estimate_type"] != "correlation" for r in info["constraint_report"])
    assert info["correlations"]["rounds"] == 1


class JitteringBackend(UniformBackend):
    """The uniform fit with P(rain) moved by +/- ``jitter`` in turn each fit, and a stated ``moment_stderr``.

    A sampling backend's means move from one fit to the next by noise alone; ``jitter``
    plays that noise and ``moment_stderr`` what the backend says of it.
    """

    def __init__(self, jitter: float, stderr: float):
        super().__init__()
        self.jitter, self.stderr, self.fits = jitter, stderr, 0

    @hookimpl
    def fit(self, model, config, progress):
        self.fits += 1
        p = 0.5 + self.jitter * (-1) ** self.fits
        fitted = UniformBackend.fit(self, model, config, None)
        marginals = dict(fitted.marginals, rain=np.array([1.0 - p, p]))
        return attrs.evolve(fitted, marginals=marginals, moment_stderr=self.stderr)


@pytest.mark.parametrize(("stderr", "rounds"), [(0.0, 5), (0.0005, 5), (0.002, 2)])
def test_the_loop_stops_where_the_moments_move_by_noise_alone(stderr, rounds):
    # E[rain] and E[rain^2] swing by 2 * 0.0015 = 0.003; a linearisation point between two
    # swings (damped) is 0.0015-0.003 from the next fit's moments. Within NOISE_Z = 2 standard
    # errors of 0.002 (0.004) round 2 settles; at 0.0005 (0.001) or for an exact backend (the
    # correlation_tolerance 1e-6) every change is progress, and the loop runs to correlation_rounds.
    register_backend("jitter_corr", JitteringBackend(0.0015, stderr))
    try:
        builder = DistributionBuilder([RAIN, X], [corr("rain", "x", 0.5)], backend="jitter_corr",
                                      config={"max_bins": 4, "correlation_rounds": 5})
        info = builder.build(target_variable="rain", progress=False)[1]
    finally:
        unregister_backend("jitter_corr")
    assert info["correlations"]["rounds"] == rounds
    assert info["correlations"]["converged"] == (rounds < 5)
    assert settled_within(1e-6, FitResult(np.zeros(0), np.zeros(0), np.zeros((0, 2)), {}, True, 0, 0,
                                          moment_stderr=stderr)) == max(1e-6, NOISE_Z * stderr)


def test_a_huge_sd_on_a_correlation_is_capped_not_an_overflow():
    # sd 1e155 squared overflows a float; like every s^2 it is held to MAX_S2 (in correlation units),
    # then carried to h's units by both variables' spreads (1/2 for a uniform binary).
    from calibrated_response_plugins.compiler import MAX_S2

    compiled = compile_problem([RAIN, WIND], [corr("rain", "wind", 0.0, sd=1e155)], CONFIG)
    (correlation,) = compiled.correlations
    assert correlation.s2 == pytest.approx(MAX_S2 * (0.5 * 0.5) ** 2)
