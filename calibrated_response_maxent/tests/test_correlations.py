"""Correlation estimates against an independent exact reference.

The reference maximises the entropy of the enumerated joint directly with scipy's
SLSQP: hard linear and correlation constraints (the backend then fits with a tiny
l2, so its softening is below the tolerance), or the penalised primal
``H(p) - sum (E[g] - c)^2 / (2 s^2) - sum h(p)^2 / (2 s_h^2)`` as docs/semantics.md states it.
``h`` and its gradient are written out here from the definition, not taken from the core.
"""

from __future__ import annotations

import copy
import string

import numpy as np
import pytest
from calibrated_response_plugins import DistributionBuilder, compile_problem
from calibrated_response_plugins.correlations import base_spread
from scipy.optimize import minimize

from calibrated_response_maxent.config import MaxentConfig
from calibrated_response_maxent.solver import evaluate_dual


def binary(name):
    return {"name": name, "description": "", "type": "binary"}


def continuous(name, low, high):
    return {"name": name, "description": "", "type": "continuous", "lower_bound": low, "upper_bound": high}


def eq(variable, value=True):
    return {"proposition_type": "equality", "variable": variable, "variable_type": "binary", "value": value}


def gt(variable, threshold):
    return {"proposition_type": "inequality", "variable": variable, "variable_type": "continuous",
            "threshold": threshold, "is_lower_bound": True}


def corr(id, a, b, r, **extra):
    return {"id": id, "estimate_type": "correlation", "variable_a": a, "variable_b": b, "correlation": r, **extra}


MIXED = {
    "variables": [binary("a"), binary("b"), continuous("x", 0.0, 10.0)],
    "estimates": [
        {"id": "p_a", "estimate_type": "probability", "probability": 0.3, "proposition": eq("a")},
        {"id": "e_x", "estimate_type": "expectation", "variable": "x", "expected_value": 6.0},
        {"id": "p_b_a", "estimate_type": "conditional_probability", "probability": 0.7,
         "proposition": eq("b"), "conditions": [eq("a")]},
        corr("c_ax", "a", "x", 0.5),
        corr("c_bx", "x", "b", -0.3, relation="le"),
    ],
}
CONTINUOUS = {
    "variables": [continuous("x", 0.0, 1.0), continuous("y", -5.0, 5.0), binary("z")],
    "estimates": [
        {"id": "p_x", "estimate_type": "probability", "probability": 0.4, "proposition": gt("x", 0.5)},
        {"id": "p_z", "estimate_type": "probability", "probability": 0.6, "proposition": eq("z")},
        corr("c_xy", "x", "y", 0.6, sd=0.1),
        corr("c_yz", "y", "z", -0.4, relation="ge"),
    ],
}


# --------------------------------------------------------------------------- the reference


def joint_tables(problem):
    """Every linear constraint's feature and every correlation's value tables on the full joint."""
    shape = tuple(problem.n_states)
    letters = string.ascii_letters[: len(shape)]

    def on_joint(table, scope):
        subscripts = "".join(letters[i] for i in scope)
        return np.broadcast_to(np.einsum(f"{subscripts}->{subscripts}", table).reshape(
            [shape[i] if i in scope else 1 for i in range(len(shape))]), shape)

    linear = [on_joint(c.feature, c.scope) for c in problem.constraints]
    pairs = []
    for c in problem.correlations:
        tables = []
        for axis, index in enumerate(c.scope):
            domain = problem.domains[index]
            value = domain.rescale(domain.values)
            width2 = (np.diff(domain.bin_edges) / domain.span) ** 2 / 12 if domain.kind == "continuous" else 0.0
            tables.append((on_joint(value, (index,)), on_joint(value**2 + width2, (index,))))
        pairs.append(tables)
    return linear, pairs


def h_and_gradient(p, r, tables):
    """``h = Cov - r sd sd`` of the pair and its gradient in ``p`` (joint shape)."""
    (x, x2), (y, y2) = tables
    ex, ey, exy = np.sum(p * x), np.sum(p * y), np.sum(p * x * y)
    vx, vy = np.sum(p * x2) - ex**2, np.sum(p * y2) - ey**2
    sx, sy = np.sqrt(vx), np.sqrt(vy)
    h = exy - ex * ey - r * sx * sy
    dvx, dvy = x2 - 2 * ex * x, y2 - 2 * ey * y
    grad = x * y - ey * x - ex * y - r * (sy / (2 * sx) * dvx + sx / (2 * sy) * dvy)
    return h, grad


def sign_of(relation):
    """SLSQP's ``fun >= 0`` form: ``c - E[g] >= 0`` for le, ``E[g] - c >= 0`` for ge."""
    return {"le": -1.0, "ge": 1.0}[relation]


def penalty(value, relation, s2):
    """``pen(v)`` and ``pen'(v)``: the one-sided square for le/ge."""
    if relation == "le":
        value = max(value, 0.0)
    elif relation == "ge":
        value = min(value, 0.0)
    return value**2 / (2 * s2), value / s2


def softmax(theta):
    weights = np.exp(theta - theta.max())
    return weights / weights.sum()


def through_softmax(p, grad):
    """Chain rule from a gradient in ``p`` to one in the logits ``theta`` (``p = softmax(theta)``)."""
    return p * (grad - p @ grad)


def reference_joint(problem, hard, start=None):
    """Maximise the entropy of the enumerated joint with SLSQP; return the joint (variable order).

    The joint is parametrised by logits (``p = softmax(theta)``), so it stays on the
    simplex and every function SLSQP sees is smooth.
    """
    shape = tuple(problem.n_states)
    linear, pairs = (
        [g.ravel() for g in tables] if i == 0 else [[(a.ravel(), b.ravel()) for a, b in t] for t in tables]
        for i, tables in enumerate(joint_tables(problem))
    )

    def negative_objective(theta):
        p = softmax(theta)
        value = float(p @ np.log(p))
        grad = np.log(p) + 1.0
        if not hard:
            for c, g in zip(problem.constraints, linear):
                pen, slope = penalty(float(p @ g) - c.target, c.relation, c.s2)
                value, grad = value + pen, grad + slope * g
            for c, tables in zip(problem.correlations, pairs):
                h, dh = h_and_gradient(p, c.correlation, tables)
                pen, slope = penalty(h, c.relation, c.s2)
                value, grad = value + pen, grad + slope * dh
        return value, through_softmax(p, grad)

    constraints = []
    if hard:
        for c, g in zip(problem.constraints, linear):
            sign = 1.0 if c.relation == "eq" else sign_of(c.relation)
            constraints.append({
                "type": "eq" if c.relation == "eq" else "ineq",
                "fun": lambda t, g=g, c=c, s=sign: s * (softmax(t) @ g - c.target),
                "jac": lambda t, g=g, s=sign: s * through_softmax(softmax(t), g),
            })
        for c, tables in zip(problem.correlations, pairs):
            sign = 1.0 if c.relation == "eq" else sign_of(c.relation)
            constraints.append({
                "type": "eq" if c.relation == "eq" else "ineq",
                "fun": lambda t, c=c, tb=tables, s=sign: s * h_and_gradient(softmax(t), c.correlation, tb)[0],
                "jac": lambda t, c=c, tb=tables, s=sign: s * through_softmax(
                    softmax(t), h_and_gradient(softmax(t), c.correlation, tb)[1]),
            })
    theta0 = np.zeros(int(np.prod(shape))) if start is None else np.log(np.ravel(start))
    result = minimize(negative_objective, theta0, jac=True, method="SLSQP", constraints=constraints,
                      options={"ftol": 1e-15, "maxiter": 3000})
    assert result.success, result.message
    return softmax(result.x).reshape(shape)


# --------------------------------------------------------------------------- the backend's joint


def backend_joint(fitted, n_variables):
    """The maxent fit's full joint (variable order) from its dense model and multipliers."""
    model = fitted.state
    point = evaluate_dual(model, fitted.lambdas)
    letters = string.ascii_letters
    inputs = ",".join("".join(letters[v] for v in c.variables) for c in model.components)
    return np.einsum(f"{inputs}->{letters[:n_variables]}", *(s.probabilities for s in point.components))


def fit(problem, **options):
    builder = DistributionBuilder(problem["variables"], problem["estimates"], backend="maxent",
                                  config={"max_bins": 4, **options})
    hook = builder._plugins.hook
    from calibrated_response_plugins.correlations import fit_problem

    compiled = builder.compile()
    outcome = fit_problem(hook, compiled, builder.config)
    return compiled, outcome


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("case", [MIXED, CONTINUOUS], ids=["mixed", "continuous"])
def test_fixed_point_is_the_penalised_maximum_entropy_joint(case):
    compiled, outcome = fit(case)
    assert outcome.info["converged"] and not outcome.skipped
    reference = reference_joint(compiled, hard=False)
    # SLSQP's ftol 1e-15 on an objective of order 1 and the loop's 1e-6 moment tolerance
    # (times a contraction factor < 1) both sit far below the 1e-4 asked of the joint.
    np.testing.assert_allclose(backend_joint(outcome.fitted, len(compiled.domains)), reference, atol=1e-4)


@pytest.mark.parametrize("case", [MIXED, CONTINUOUS], ids=["mixed", "continuous"])
def test_fixed_point_meets_hard_constraints_like_the_constrained_maximum(case):
    hard = copy.deepcopy(case)
    for estimate in hard["estimates"]:
        estimate.pop("sd", None)
    # l2 = 1e-10: the softening moves each moment by s^2 * lambda, multipliers here are < 100.
    compiled, outcome = fit(hard, l2_regularization=1e-10, correlation_tolerance=1e-8, correlation_rounds=200)
    assert outcome.info["converged"]
    reference = reference_joint(compiled, hard=True)
    np.testing.assert_allclose(backend_joint(outcome.fitted, len(compiled.domains)), reference, atol=1e-4)
    for row in outcome.report_rows:
        if row["relation"] == "eq":
            assert abs(row["residual"]) < 1e-5, row
        else:
            assert (row["residual"] <= 1e-5) if row["relation"] == "le" else (row["residual"] >= -1e-5), row


def test_first_round_is_the_fit_without_correlations():
    compiled, outcome = fit(MIXED)
    plain = copy.deepcopy(MIXED)
    plain["estimates"] = [e for e in plain["estimates"] if e["estimate_type"] != "correlation"]
    _, info = DistributionBuilder(plain["variables"], plain["estimates"], backend="maxent",
                                  config={"max_bins": 4}).build(target_variable="a", progress=False)
    for name, probabilities in info["marginals"].items():
        # Both are exact fits of the same dual (the probes' multipliers are 0): gtol 1e-8.
        np.testing.assert_allclose(outcome.info["first_round_marginals"][name], probabilities, atol=1e-7)
    assert outcome.info["history"][0]["round"] == 1 and outcome.info["rounds"] >= 3


def test_builder_reports_correlations():
    builder = DistributionBuilder(MIXED["variables"], MIXED["estimates"], backend="maxent", config={"max_bins": 4})
    _, info = builder.build(target_variable="a", progress=False)
    rows = {row["id"]: row for row in info["constraint_report"]}
    assert rows["c_ax"]["estimate_type"] == "correlation" and rows["c_ax"]["target"] == 0.5
    # l2 = 1e-3 in correlation units: a consistent correlation is met to a few s^2 lambda.
    assert abs(rows["c_ax"]["residual"]) < 0.01
    assert rows["c_bx"]["fitted"] <= -0.3 + 0.01
    assert info["correlations"]["rounds"] >= 2 and info["converged"]


def test_stationary_point_is_the_one_reached_from_the_fit_without_correlations():
    """The answer is SLSQP's local maximum when SLSQP starts from the first-round fit too."""
    compiled, outcome = fit(MIXED)
    plain = compile_problem(MIXED["variables"], [e for e in MIXED["estimates"] if e["estimate_type"] != "correlation"],
                            MaxentConfig(max_bins=4))
    start = reference_joint(plain, hard=False)
    reference = reference_joint(compiled, hard=False, start=start)
    np.testing.assert_allclose(backend_joint(outcome.fitted, len(compiled.domains)), reference, atol=1e-4)


def test_sd_is_in_correlation_units():
    compiled = compile_problem(CONTINUOUS["variables"], CONTINUOUS["estimates"], MaxentConfig(max_bins=4))
    x, y = compiled.domains[0], compiled.domains[1]
    (c_xy, c_yz) = compiled.correlations
    assert np.isclose(c_xy.s2, (0.1 * base_spread(x) * base_spread(y)) ** 2)
    assert np.isclose(c_yz.s2, 1e-3 * (base_spread(y) * base_spread(compiled.domains[2])) ** 2)
    # Four equal bins on [0, 1] under the uniform measure: the spread of a uniform on [0, 1].
    assert np.isclose(base_spread(x), np.sqrt(1 / 12))


def test_a_correlation_the_marginals_cannot_reach_is_skipped_with_the_reachable_range():
    # P(a) = 0.1 and P(b) = 0.9 allow at most Corr = sqrt(0.1 * 0.1 / (0.9 * 0.9)) = 0.111 (Frechet
    # bound); fitting 0.99 anyway would shrink both variances towards 0 instead.
    problem = {"variables": [binary("a"), binary("b")], "estimates": [
        {"id": "p_a", "estimate_type": "probability", "probability": 0.1, "proposition": eq("a")},
        {"id": "p_b", "estimate_type": "probability", "probability": 0.9, "proposition": eq("b")},
        corr("c", "a", "b", 0.99), corr("d", "b", "a", -0.5, relation="ge")]}
    _, info = DistributionBuilder(problem["variables"], problem["estimates"], backend="maxent").build(
        target_variable="a", progress=False)
    (skip,) = info["skipped_constraints"]
    assert skip.startswith("c: correlation eq 0.99 is out of reach") and "[-1.000, 0.11" in skip  # 0.111 at the l2-softened marginals
    assert [r["id"] for r in info["constraint_report"]] == ["p_a", "p_b", "d"]
    # The marginals stay where the probability estimates put them, up to the l2 term's
    # s^2 lambda = 1e-3 * |logit(0.1)| = 0.0022.
    assert abs(info["marginals"]["a"][1] - 0.1) < 3e-3 and abs(info["marginals"]["b"][1] - 0.9) < 3e-3
    assert all(np.all(np.isfinite(p)) for p in info["marginals"].values())


def test_reachable_range_of_two_binaries_is_the_frechet_range():
    compiled = compile_problem([binary("a"), binary("b")], [corr("c", "a", "b", 0.5)], MaxentConfig())
    (c,) = compiled.correlations
    from calibrated_response_plugins.correlations import reachable_range

    low, high = reachable_range(c, [np.array([0.7, 0.3]), np.array([0.4, 0.6])])
    # Max P(a, b) = min(0.3, 0.6), min = max(0, 0.3 + 0.6 - 1), over sqrt(0.3 0.7 0.6 0.4).
    sd = np.sqrt(0.3 * 0.7 * 0.6 * 0.4)
    assert np.isclose(high, (0.3 - 0.18) / sd) and np.isclose(low, (0.0 - 0.18) / sd)


def test_first_round_probes_link_nothing():
    """Round 1's zero-feature probes leave the joint as the fit without correlations enumerates it."""
    from calibrated_response_maxent.model import build_dense_model
    from calibrated_response_maxent.solver import fit_dense_model
    from calibrated_response_plugins.correlations import linearised_problem

    problem = {"variables": [binary("a"), binary("b"), continuous("x", 0.0, 10.0)], "estimates": [
        {"id": "p_a", "estimate_type": "probability", "probability": 0.3, "proposition": eq("a")},
        {"id": "p_b", "estimate_type": "probability", "probability": 0.8, "proposition": eq("b")},
        {"id": "e_x", "estimate_type": "expectation", "variable": "x", "expected_value": 6.0},
        corr("c_ax", "a", "x", 0.5), corr("c_bx", "b", "x", -0.3)]}
    compiled = compile_problem(problem["variables"], problem["estimates"], MaxentConfig(max_bins=4))
    probes = build_dense_model(linearised_problem(compiled, [None, None]))
    assert len(probes.components) == 3 and len(probes.detached) == 2
    fitted = fit_dense_model(probes, MaxentConfig(max_bins=4))
    # The probes' report numerators are E[XY], here E[X] E[Y] of independent components.
    offset = len(compiled.constraints)
    for j, c in enumerate(compiled.correlations):
        (x, y), names = c.values, c.names
        expected = (fitted.marginals[names[0]] @ x) * (fitted.marginals[names[1]] @ y)
        assert np.isclose(fitted.report_means[offset + j][0], expected, atol=1e-12)
    linked = build_dense_model(linearised_problem(compiled, [np.array([0.3, 0.3, 0.6, 0.4, 0.2])] * 2))
    assert len(linked.components) == 1 and not linked.detached


def test_early_rounds_fit_loosely_and_the_answer_is_a_full_accuracy_fit(monkeypatch):
    import calibrated_response_plugins.correlations as correlations

    compiled, outcome = fit(MIXED)
    history = outcome.info["history"]
    # Round 2 starts from |h| of the fit without correlations, far above 100 x 1e-6: loosened.
    assert history[1]["inner_tolerance"] is not None and history[1]["inner_tolerance"] <= correlations.LOOSEST_INNER
    assert history[-1]["inner_tolerance"] is None and outcome.info["converged"]
    assert outcome.fitted.converged and outcome.fitted.diagnostics["projected_gradient_norm"] <= MaxentConfig().gtol
    monkeypatch.setattr(correlations, "TIGHT_WITHIN", float("inf"))
    _, tight = fit(MIXED)
    assert all(entry["inner_tolerance"] is None for entry in tight.info["history"])
    # Both stop once the moments move less than 1e-6 in a round, at a contraction well below
    # 1/2 per round: each is within a few 1e-6 of the fixed point.
    np.testing.assert_allclose(backend_joint(outcome.fitted, len(compiled.domains)),
                               backend_joint(tight.fitted, len(compiled.domains)), atol=1e-5)


def test_inner_tolerance_is_a_forcing_term_on_backends_that_name_their_tolerance():
    from calibrated_response_plugins.correlations import FORCING, LOOSEST_INNER, inner_tolerance, round_config

    config = MaxentConfig()
    assert inner_tolerance(config, 1e-2, 1e-6) == FORCING * 1e-2
    assert inner_tolerance(config, 1.0, 1e-6) == LOOSEST_INNER
    assert inner_tolerance(config, 5e-5, 1e-6) is None  # within 100 x correlation_tolerance: the backend's own
    assert inner_tolerance(config, float("inf"), 1e-6) is None
    assert inner_tolerance(MaxentConfig(gtol=1e-3), 1e-2, 1e-6) is None  # never tighter than the backend's own
    assert round_config(config, 5e-5).gtol == 5e-5 and round_config(config, None) is config

    class Unnamed:
        gtol = 1e-8

    assert inner_tolerance(Unnamed(), 1e-2, 1e-6) is None
