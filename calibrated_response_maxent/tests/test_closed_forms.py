"""The exact backend against closed forms and brute-force entropy maximisation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq, minimize

from calibrated_response_maxent.config import MaxentConfig
from calibrated_response_maxent.model import build_dense_model
from calibrated_response_maxent.solver import dual_hessian, evaluate_dual, fit_dense_model

# A variance this small makes the l2 term negligible: |s^2 lambda| stays below ~1e-11
# for the multipliers these problems need (|lambda| < 100).
NEGLIGIBLE_S2 = 1e-13


def fit(problem, **options):
    return fit_dense_model(build_dense_model(problem), MaxentConfig(**options))


def test_threshold_probability_gives_piecewise_constant_masses(build):
    x = build.continuous("x", 0.0, 10.0, n_bins=10)
    problem = build.ConstraintSet([x], [build.constraint("p", (0,), build.above(x, 3.0), 0.3, s2=NEGLIGIBLE_S2)])

    result = fit(problem)

    expected = np.r_[np.full(3, 0.7 / 3), np.full(7, 0.3 / 7)]
    assert result.converged
    # The gradient E[g] - c + s^2 lambda is below gtol = 1e-8 and s^2 lambda is below 1e-11,
    # so each mass is within ~1e-8; 1e-7 leaves headroom for summation rounding.
    np.testing.assert_allclose(result.marginals["x"], expected, atol=1e-7)


def test_expectation_gives_exponential_tilt_matching_the_mean(build):
    x = build.continuous("x", 0.0, 20.0)
    mu = 6.5
    problem = build.ConstraintSet(
        [x], [build.constraint("e", (0,), x.rescale(x.values), float(x.rescale(mu)), s2=NEGLIGIBLE_S2)]
    )

    result = fit(problem)

    probabilities = result.marginals["x"]
    mean = float(probabilities @ x.values)
    assert result.converged
    # gtol = 1e-8 on the rescaled mean is 2e-7 in x's units (span 20); 1e-6 is the required match.
    assert mean == pytest.approx(mu, abs=1e-6)
    # Max entropy under a mean constraint is p_i proportional to exp(lambda * u_i): log p is linear
    # in the value with slope lambda / span. Log-probabilities are exact to ~1e-12 here.
    slopes = np.diff(np.log(probabilities)) / np.diff(x.values)
    np.testing.assert_allclose(slopes, result.lambdas[0] / x.span, rtol=1e-9)


def max_entropy_pair_given(conditional: float) -> np.ndarray:
    """Brute force: the maximum-entropy joint of two binaries ``q[a, b]`` with ``P(A | B) = p``."""

    def negative_entropy(q):
        return float(np.sum(q * np.log(q)))

    constraints = [
        {"type": "eq", "fun": lambda q: np.sum(q) - 1.0},
        {"type": "eq", "fun": lambda q: q[3] - conditional * (q[1] + q[3])},  # cells (a, b) row-major
    ]
    solution = minimize(
        negative_entropy, np.full(4, 0.25), method="SLSQP", bounds=[(1e-12, 1.0)] * 4,
        constraints=constraints, options={"ftol": 1e-15, "maxiter": 500},
    )
    assert solution.success, solution.message
    return solution.x.reshape(2, 2)


def pair_with_conditional(build, p: float):
    """Two binaries a, b with the single estimate P(a | b) = p, reported as P(a and b) / P(b)."""
    and_b = np.array([[0.0, 0.0], [0.0, 1.0]])
    b_only = np.array([[0.0, 1.0], [0.0, 1.0]])
    estimate = build.constraint(
        "p_a_given_b", (0, 1), and_b - p * b_only, 0.0, s2=NEGLIGIBLE_S2, numerator=and_b, denominator=b_only
    )
    return build.ConstraintSet([build.binary("a"), build.binary("b")], [estimate])


def test_conditional_probability_matches_brute_force_entropy_maximisation(build):
    p = 0.8

    result = fit(pair_with_conditional(build, p))
    brute = max_entropy_pair_given(p)

    numerator, denominator = result.report_means[0]
    assert result.converged
    # gtol = 1e-8 on E[w_AB - p w_B] bounds P(A | B) - p by 1e-8 / P(B) with P(B) ~ 0.5.
    assert numerator / denominator == pytest.approx(p, abs=1e-6)
    # SLSQP stops on ftol = 1e-15 in the entropy, which is flat at the optimum, so its cells
    # are accurate to ~sqrt(1e-15) ~ 3e-8; 1e-6 allows for that.
    assert result.marginals["b"][1] == pytest.approx(brute[:, 1].sum(), abs=1e-6)
    assert result.marginals["a"][1] == pytest.approx(brute[1, :].sum(), abs=1e-6)


def test_conditional_probability_leaves_p_b_at_its_closed_form(build):
    p = 0.8

    result = fit(pair_with_conditional(build, p))

    # With q(a, b) proportional to exp(lambda g): P(A | B) = p fixes lambda, and
    # P(B) = (e^{lambda (1 - p)} + e^{-lambda p}) / (that + 2).
    tilt = brentq(lambda t: np.exp(t * (1 - p)) / (np.exp(t * (1 - p)) + np.exp(-t * p)) - p, -50, 50)
    weight_b = np.exp(tilt * (1 - p)) + np.exp(-tilt * p)
    # Both sides are exact to ~1e-9 (gtol and brentq's xtol); 1e-7 is headroom.
    assert result.marginals["b"][1] == pytest.approx(weight_b / (weight_b + 2), abs=1e-7)


def test_kkt_residual_equals_minus_s2_lambda_for_every_equality(mixed_problem):
    result = fit(mixed_problem)

    residual = result.feature_means - mixed_problem.targets
    equality = np.array([relation == "eq" for relation in mixed_problem.relations])
    assert result.converged
    # Stationarity: E[g] - c + s^2 lambda = 0 up to the gradient tolerance gtol = 1e-8;
    # 1e-6 is the contract's tolerance.
    np.testing.assert_allclose(residual[equality], -(mixed_problem.s2 * result.lambdas)[equality], atol=1e-6)
    # The two conflicting estimates of P(x > 6) (0.3 and 0.5) meet in a compromise, so the
    # l2 term is doing real work: their residuals are far from zero and opposite in sign.
    assert residual[0] > 0.01 and residual[1] < -0.01


def test_inequalities_are_met_or_inactive_with_the_right_multiplier_sign(build):
    x = build.continuous("x", 0.0, 10.0)
    tail = build.above(x, 5.0)  # 0.5 under the uniform distribution
    cases = [("ge", 0.3, "inactive"), ("ge", 0.8, "active"), ("le", 0.2, "active"), ("le", 0.9, "inactive")]
    for relation, target, expected in cases:
        problem = build.ConstraintSet([x], [build.constraint("tail", (0,), tail, target, relation=relation)])
        result = fit(problem)
        multiplier, mean = result.lambdas[0], result.feature_means[0]
        assert result.converged
        if expected == "inactive":
            assert multiplier == 0.0
            # Nothing pulls the uniform distribution: the tail mass stays at 0.5 to rounding.
            assert mean == pytest.approx(0.5, abs=1e-12)
        else:
            assert multiplier > 0 if relation == "ge" else multiplier < 0
            # Active: met up to the l2 compromise, E[g] - c = -s^2 lambda, within gtol = 1e-8.
            assert mean - target == pytest.approx(-1e-3 * multiplier, abs=1e-8)


def test_inequality_in_the_mixed_problem_satisfies_complementary_slackness(mixed_problem):
    result = fit(mixed_problem)

    for index, relation in enumerate(mixed_problem.relations):
        if relation == "eq":
            continue
        multiplier = result.lambdas[index]
        slack = result.feature_means[index] - mixed_problem.targets[index]
        assert (multiplier >= 0) if relation == "ge" else (multiplier <= 0)
        # Either inactive (lambda = 0 and the inequality holds) or active (E[g] - c = -s^2 lambda);
        # both up to gtol = 1e-8, with 1e-6 the contract's tolerance.
        if multiplier == 0.0:
            assert (slack >= -1e-6) if relation == "ge" else (slack <= 1e-6)
        else:
            assert slack == pytest.approx(-mixed_problem.s2[index] * multiplier, abs=1e-6)


def test_fit_result_is_consistent_with_its_marginals(build, mixed_problem):
    result = fit(mixed_problem)

    assert result.n_factors == 7  # two constraints share the scope (x,)
    assert result.lambdas.shape == result.feature_means.shape == (9,)
    assert result.report_means.shape == (9, 2)
    for name, probabilities in result.marginals.items():
        # A marginal is a sum over the joint, which sums to 1 up to float64 rounding.
        assert probabilities.sum() == pytest.approx(1.0, abs=1e-12), name
    x = mixed_problem.domains[2]
    # E[w_{x > 6}] from the x marginal equals the fitted feature mean to float64 rounding.
    assert result.marginals["x"] @ build.above(x, 6.0) == pytest.approx(result.feature_means[0], abs=1e-12)
    numerator, denominator = result.report_means[4]
    # The feature of P(y > 0.5 | a) = 0.8 is numerator - 0.8 * denominator, so the reported
    # ratio minus 0.8 is E[g] / E[denominator]: an identity, up to float64 rounding.
    assert numerator / denominator - 0.8 == pytest.approx(result.feature_means[4] / denominator, abs=1e-12)
    assert result.diagnostics["projected_gradient_norm"] <= 1e-8
    assert result.diagnostics["iterations"] == result.n_iterations == len(result.history["objective"])


def test_newton_polish_finishes_what_lbfgsb_starts(mixed_problem):
    reference = fit(mixed_problem)
    stopped_early = fit(mixed_problem, max_iterations=2)

    assert stopped_early.converged
    assert stopped_early.diagnostics["newton_steps"] > 0
    # The dual is strongly convex (Hessian >= s^2 = 1e-3), so gradients within 1e-8 put the
    # two optima within 1e-8 / 1e-3 = 1e-5 of each other.
    np.testing.assert_allclose(stopped_early.lambdas, reference.lambdas, atol=1e-5)


def test_infeasible_constraint_without_l2_reports_non_convergence(build):
    x = build.continuous("x", 0.0, 10.0)
    # No distribution has P(x > 5) = 1.2, and without the l2 term lambda runs off to infinity.
    problem = build.ConstraintSet([x], [build.constraint("impossible", (0,), build.above(x, 5.0), 1.2, s2=0.0)])

    result = fit(problem, max_iterations=50, max_polish_steps=5)

    assert not result.converged
    assert result.warnings and "did not converge" in result.warnings[0]


def test_hessian_matches_finite_differences_of_the_gradient(mixed_problem):
    model = build_dense_model(mixed_problem)
    lambdas = np.random.default_rng(0).normal(size=model.n_constraints)
    step = 1e-6

    hessian = dual_hessian(model, evaluate_dual(model, lambdas))
    numeric = np.array([
        (evaluate_dual(model, lambdas + step * unit).gradient - evaluate_dual(model, lambdas - step * unit).gradient)
        / (2 * step)
        for unit in np.eye(model.n_constraints)
    ])

    # Central differences err by O(step^2) ~ 1e-12 plus rounding ~ 1e-16 / step = 1e-10.
    np.testing.assert_allclose(hessian, numeric, atol=1e-8)


def test_independent_components_match_a_single_dense_joint(build):
    # (a, x) and (b, y) share no scope, so the model enumerates them as two components.
    a, b = build.binary("a"), build.binary("b")
    x, y = build.continuous("x", 0, 10), build.continuous("y", 0, 1)
    true = np.array([0.0, 1.0])
    constraints = [
        build.constraint("p_x_given_a", (0, 2), np.outer(true, build.above(x, 4.0) - 0.6), 0.0),
        build.constraint("p_a", (0,), true, 0.3),
        build.constraint("e_y_given_b", (1, 3), np.outer(true, y.rescale(y.values) - 0.2), 0.0),
        build.constraint("p_y", (3,), build.above(y, 0.5), 0.4, relation="le"),
    ]
    # A constant feature at its own mean has lambda = 0 at the optimum and changes nothing,
    # but its scope links the two components into one dense joint. (An all-zero feature
    # links nothing: the model leaves such a scope detached.)
    link = build.constraint("link", (0, 1, 2), np.ones((2, 2, 21)), 1.0)
    split = fit(build.ConstraintSet([a, b, x, y], constraints))
    joined = fit(build.ConstraintSet([a, b, x, y], constraints + [link]))

    assert split.diagnostics["n_components"] == 2 and joined.diagnostics["n_components"] == 1
    assert split.diagnostics["n_enumerated_states"] == 2 * 21 + 2 * 21
    # Both fits stop with gradients below gtol = 1e-8 on a dual with Hessian >= s^2 = 1e-3,
    # so their multipliers agree to 1e-5 and their marginals to far better than 1e-6.
    np.testing.assert_allclose(joined.lambdas[:4], split.lambdas, atol=1e-5)
    for name in ("a", "b", "x", "y"):
        np.testing.assert_allclose(joined.marginals[name], split.marginals[name], atol=1e-6)
