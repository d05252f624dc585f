"""Test helpers every backend shares: the conformance kit, small-problem builders, an exact oracle.

Builders (:func:`binary_domain`, :func:`continuous_domain`, :func:`above`,
:func:`table_constraint`, :func:`conditional_constraint`) make hand-built
:class:`ConstraintSet` objects without the compiler. :func:`exact_fit` is the
reference every backend is tested against: it enumerates the joint and solves
the dual of ``docs/semantics.md`` to float64 precision, independently of any
backend's code.

The conformance kit: the checks every backend runs against itself.

Subclass :class:`BackendConformance` in a backend's test suite::

    from calibrated_response_plugins.testing import BackendConformance

    class TestSmmConformance(BackendConformance):
        backend = "smm"
        config = {"num_chains": 512}
        tolerance = 0.01           # |P(target) - P_maxent(target)|
        residual_tolerance = 0.02  # |residual - residual_maxent| per constraint,
                                   # expectations in units of their variable's span

The kit fits a small shipped problem (three variables, every estimate kind,
one estimate that must be skipped, a correlation) and checks normalised
outputs, the info keys, deterministic skips, same seed same result, agreement
with the exact maximum-entropy answer (:func:`exact_fit`; the correlation's
fitted value against the exact ``maxent`` backend), the ``refit`` warm start,
and clear errors for bad input.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any, ClassVar, NamedTuple

import numpy as np
import pytest

from calibrated_response_plugins.builder import DistributionBuilder, constraint_report
from calibrated_response_plugins.registry import ENTRY_POINT_GROUP
from calibrated_response_plugins.config import CoreConfig, config_from_options
from calibrated_response_plugins.constraints import Constraint, ConstraintSet, Domain, FitResult
from calibrated_response_plugins.hookspecs import hookimpl
from calibrated_response_plugins.models import ModelInputError

INFO_KEYS = (
    "target_variable", "n_variables", "n_estimates", "n_factors", "history", "skipped_constraints",
    "bin_edges_list", "marginals", "joint_note", "backend", "backend_reason", "config", "converged", "runtime_sec",
    "warnings", "constraint_report",
)
REPORT_KEYS = ("id", "estimate_type", "relation", "target", "fitted", "residual", "scaled_residual")

CONFORMANCE_PROBLEM: dict[str, Any] = {
    "question": "Will the harvest festival go ahead?",
    "target_variable": "festival",
    "variables": [
        {"name": "festival", "description": "The festival goes ahead", "type": "binary"},
        {"name": "rain", "description": "Heavy rain on the day", "type": "binary"},
        {"name": "temperature", "description": "Daily high", "type": "continuous",
         "lower_bound": 0.0, "upper_bound": 40.0, "unit": "degrees C"},
    ],
    "estimates": [
        {"id": "p_rain", "estimate_type": "probability", "probability": 0.3,
         "proposition": {"proposition_type": "equality", "variable": "rain", "variable_type": "binary", "value": True}},
        {"id": "e_temp", "estimate_type": "expectation", "variable": "temperature", "expected_value": 22.0},
        {"id": "p_fest_rain", "estimate_type": "conditional_probability", "probability": 0.35,
         "proposition": {"proposition_type": "equality", "variable": "festival", "variable_type": "binary", "value": True},
         "conditions": [{"proposition_type": "equality", "variable": "rain", "variable_type": "binary", "value": True}]},
        {"id": "p_fest_warm", "estimate_type": "conditional_probability", "probability": 0.8,
         "proposition": {"proposition_type": "equality", "variable": "festival", "variable_type": "binary", "value": True},
         "conditions": [{"proposition_type": "inequality", "variable": "temperature", "variable_type": "continuous",
                         "threshold": 25.0, "is_lower_bound": True}]},
        {"id": "e_temp_rain", "estimate_type": "conditional_expectation", "variable": "temperature",
         "expected_value": 17.0,
         "conditions": [{"proposition_type": "equality", "variable": "rain", "variable_type": "binary", "value": "yes"}]},
        {"id": "p_hot_cap", "estimate_type": "probability", "probability": 0.1, "relation": "le",
         "proposition": {"proposition_type": "inequality", "variable": "temperature", "variable_type": "continuous",
                         "threshold": 35.0, "is_lower_bound": True}},
        {"id": "corr", "estimate_type": "correlation", "variable_a": "rain", "variable_b": "temperature",
         "correlation": -0.4},
        {"id": "impossible", "estimate_type": "probability", "probability": 0.2,
         "proposition": {"proposition_type": "inequality", "variable": "temperature", "variable_type": "continuous",
                         "threshold": 50.0, "is_lower_bound": True}},
    ],
}
EXPECTED_SKIPS = [
    "impossible: event 'temperature > 50' is impossible on 'temperature' on [0, 40]",
]


# -- small-problem builders ----------------------------------------------------------


def binary_domain(name: str) -> Domain:
    """A binary variable: states 0 and 1, edges ``[0, 0.5, 1]``."""
    return Domain(name=name, kind="binary", bin_edges=[0.0, 0.5, 1.0], values=[0.0, 1.0], lower=0.0, upper=1.0)


def continuous_domain(name: str, lower: float, upper: float, n_bins: int = 21) -> Domain:
    """A continuous variable on ``[lower, upper]`` with ``n_bins`` equal bins; values are the bin centres."""
    edges = np.linspace(lower, upper, n_bins + 1)
    return Domain(name=name, kind="continuous", bin_edges=edges, values=(edges[:-1] + edges[1:]) / 2,
                  lower=lower, upper=upper)


def above(domain: Domain, threshold: float) -> np.ndarray:
    """Weight of ``X > threshold`` per state: the fraction of each bin above it."""
    edges = domain.bin_edges
    return np.clip((edges[1:] - threshold) / (edges[1:] - edges[:-1]), 0.0, 1.0)


def table_constraint(
    cid: str, scope: Sequence[int], feature: Any, target: float, *, relation: str = "eq", s2: float = 1e-3,
    numerator: Any = None, denominator: Any = None, estimate_type: str = "probability",
) -> Constraint:
    """``E[feature] (relation) target``, reported as ``E[numerator] / E[denominator]`` (default ``E[feature]``)."""
    feature = np.asarray(feature, dtype=np.float64)
    numerator = feature if numerator is None else np.asarray(numerator, dtype=np.float64)
    denominator = np.ones_like(feature) if denominator is None else np.asarray(denominator, dtype=np.float64)
    return Constraint(id=cid, estimate_type=estimate_type, relation=relation, scope=tuple(scope), feature=feature,
                      target=float(target), s2=s2, report_numerator=numerator, report_denominator=denominator,
                      report_target=float(target))


def conditional_constraint(
    cid: str, scope: Sequence[int], event_a_and_c: Any, event_c: Any, p: float, *, relation: str = "eq",
    s2: float = 1e-3,
) -> Constraint:
    """``P(A | C) = p`` in the centred form ``E[w_AC - p w_C] = 0``, reported as ``P(A and C) / P(C)``."""
    a_c = np.asarray(event_a_and_c, dtype=np.float64)
    c = np.broadcast_to(np.asarray(event_c, dtype=np.float64), a_c.shape).copy()
    return Constraint(id=cid, estimate_type="conditional_probability", relation=relation, scope=tuple(scope),
                      feature=a_c - p * c, target=0.0, s2=s2, report_numerator=a_c, report_denominator=c,
                      report_target=float(p))


def small_binary_problem() -> ConstraintSet:
    """Four binary variables: marginals, a conditional, a pair, a triple and an inequality."""
    one = np.array([0.0, 1.0])
    both = np.outer(one, one)
    triple = np.einsum("i,j,k->ijk", one, one, one)
    return ConstraintSet(
        domains=[binary_domain(n) for n in "abcd"],
        constraints=[
            table_constraint("pa", (0,), one, 0.4),
            table_constraint("pb", (1,), one, 0.6),
            table_constraint("a_given_b", (0, 1), both - 0.7 * np.outer(np.ones(2), one), 0.0),  # P(a | b) = 0.7
            table_constraint("pbc", (1, 2), both, 0.35),
            table_constraint("pabd", (0, 1, 3), triple, 0.2),
            table_constraint("pd_cap", (3,), one, 0.3, relation="le"),
        ],
    )


# -- the exact oracle ------------------------------------------------------------------


class ExactFit(NamedTuple):
    """The exact optimum of the dual: multipliers, ``{name: marginal}`` and ``E[g_k]``."""

    lambdas: np.ndarray
    marginals: dict[str, np.ndarray]
    feature_means: np.ndarray


def joint_feature(problem: ConstraintSet, constraint: Constraint) -> np.ndarray:
    """``constraint.feature`` broadcast to the full joint's shape (one axis per variable)."""
    shape = [1] * len(problem.domains)
    for axis, variable in enumerate(constraint.scope):
        shape[variable] = constraint.feature.shape[axis]
    return np.broadcast_to(constraint.feature.reshape(shape), problem.n_states)


def exact_joint(problem: ConstraintSet, lambdas: Any) -> np.ndarray:
    """The normalised joint ``p(x) ∝ exp(sum_k lambda_k g_k(x))`` on the full state grid."""
    logits = np.zeros(problem.n_states)
    for value, constraint in zip(np.asarray(lambdas, dtype=np.float64), problem.constraints):
        logits = logits + value * joint_feature(problem, constraint)
    weights = np.exp(logits - logits.max())
    return weights / weights.sum()


def scope_mean(joint: np.ndarray, table: Any, scope: Sequence[int]) -> float:
    """``E[table(x_scope)]`` under ``joint``."""
    others = tuple(i for i in range(joint.ndim) if i not in scope)
    return float(np.sum(joint.sum(axis=others) * np.asarray(table)))


def exact_marginals(problem: ConstraintSet, joint: np.ndarray) -> dict[str, np.ndarray]:
    """``{name: state probabilities}`` of every variable of ``joint``."""
    return {d.name: joint.sum(axis=tuple(a for a in range(joint.ndim) if a != i))
            for i, d in enumerate(problem.domains)}


def exact_fit(problem: ConstraintSet) -> ExactFit:
    """Enumerate the joint and minimise the dual with L-BFGS-B to float64 precision.

    The dual is strongly convex (its Hessian is at least ``min s_k^2``), so a
    gradient of 1e-12 puts the multipliers within 1e-12 / min s_k^2 of the optimum.
    For problems of up to about a million joint states.
    """
    from scipy.optimize import minimize
    from scipy.special import logsumexp

    from calibrated_response_plugins import dual

    features = np.stack([joint_feature(problem, c).reshape(-1) for c in problem.constraints], axis=1) \
        if problem.constraints else np.zeros((int(np.prod(problem.n_states)), 0))
    targets, s2 = problem.targets, problem.s2

    def objective(lambdas):
        scores = features @ lambdas
        log_z = logsumexp(scores)
        p = np.exp(scores - log_z)
        value = log_z - lambdas @ targets + 0.5 * np.sum(s2 * lambdas**2)
        return value, dual.dual_gradient(features.T @ p, targets, s2, lambdas)

    result = minimize(objective, np.zeros(len(targets)), jac=True, method="L-BFGS-B",
                      bounds=problem.lambda_bounds(), options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 10000})
    joint = exact_joint(problem, result.x)
    return ExactFit(result.x, exact_marginals(problem, joint), features.T @ joint.reshape(-1))


def exact_fit_result(problem: ConstraintSet) -> FitResult:
    """:func:`exact_fit` packaged as the :class:`FitResult` a backend would return."""
    fit = exact_fit(problem)
    joint = exact_joint(problem, fit.lambdas)
    report = [(scope_mean(joint, c.report_numerator, c.scope), scope_mean(joint, c.report_denominator, c.scope))
              for c in problem.constraints]
    return FitResult(lambdas=fit.lambdas, feature_means=fit.feature_means, report_means=np.reshape(report, (-1, 2)),
                     marginals=fit.marginals, converged=True, n_iterations=0,
                     n_factors=len({c.scope for c in problem.constraints}))


def max_marginal_error(marginals: Mapping[str, Any], reference: Mapping[str, Any]) -> float:
    """Largest absolute difference of any state probability from ``reference``."""
    return max(float(np.max(np.abs(np.asarray(marginals[k]) - np.asarray(v)))) for k, v in reference.items())


# -- the conformance kit ---------------------------------------------------------------

#: the conformance problem with other numbers (so other targets and conditional features), same scopes.
WARM_START_PROBLEM: dict[str, Any] = copy.deepcopy(CONFORMANCE_PROBLEM)
WARM_START_PROBLEM["estimates"][0]["probability"] = 0.45
WARM_START_PROBLEM["estimates"][2]["probability"] = 0.5
WARM_START_PROBLEM["estimates"][4]["expected_value"] = 19.0


def maxent_installed() -> bool:
    return any(ep.name == "maxent" for ep in entry_points(group=ENTRY_POINT_GROUP))


class BackendConformance:
    """Checks any backend must pass; set the class attributes in a subclass."""

    backend: ClassVar[str]
    config: ClassVar[dict[str, Any]] = {}
    #: largest |P(target) - P_maxent(target)| the backend promises.
    tolerance: ClassVar[float] = 0.01
    #: largest |scaled_residual - scaled_residual_maxent| per constraint (probabilities as they
    #: are, expectations divided by their variable's span).
    residual_tolerance: ClassVar[float] = 0.02
    #: largest gap, in P(target) and each scaled residual, between a ``refit`` from a warm
    #: start and a fresh fit of the same problem (None: ``tolerance`` / ``residual_tolerance``).
    warm_start_tolerance: ClassVar[float | None] = None

    @pytest.fixture(scope="class")
    @classmethod
    def built(cls):
        """One fit of the conformance problem per test class: (builder, histogram, info)."""
        builder = cls.make_builder()
        histogram, info = builder.build(target_variable="festival", progress=False)
        return builder, histogram, info

    @classmethod
    def make_builder(cls, problem: dict[str, Any] | None = None, **config: Any) -> DistributionBuilder:
        problem = CONFORMANCE_PROBLEM if problem is None else problem
        options = {**cls.config, **config}
        return DistributionBuilder(problem["variables"], problem["estimates"], backend=cls.backend,
                                   config=options or None)


    def test_outputs_are_normalised(self, built):
        builder, histogram, info = built
        assert np.isclose(np.sum(histogram.bin_probabilities), 1.0, atol=1e-9)
        marginals = builder.get_all_marginals(info)
        assert list(marginals) == ["festival", "rain", "temperature"]
        for name, hist in marginals.items():
            probabilities = np.asarray(hist.bin_probabilities)
            assert np.all(np.isfinite(probabilities)) and np.all(probabilities >= 0), name
            assert np.isclose(probabilities.sum(), 1.0, atol=1e-9), name
        assert marginals["temperature"].n_bins == 21
        assert list(marginals["rain"].bin_edges) == [0.0, 0.5, 1.0]

    def test_info_has_every_key(self, built):
        _, _, info = built
        for key in INFO_KEYS:
            assert key in info, key
        assert info["backend"] == self.backend
        assert info["n_variables"] == 3 and info["n_estimates"] == 8
        assert [row["id"] for row in info["constraint_report"]] == [
            "p_rain", "e_temp", "p_fest_rain", "p_fest_warm", "e_temp_rain", "p_hot_cap", "corr"]
        assert info["correlations"]["converged"] and info["correlations"]["rounds"] >= 2
        for row in info["constraint_report"]:
            for key in REPORT_KEYS:
                assert key in row, key
            assert np.isfinite(row["fitted"]), row

    def test_skips_are_deterministic(self, built):
        _, _, info = built
        assert info["skipped_constraints"] == EXPECTED_SKIPS

    def test_same_seed_same_result(self, built):
        _, _, info = built
        _, again = self.make_builder().build(target_variable="festival", progress=False)
        for name, probabilities in info["marginals"].items():
            np.testing.assert_array_equal(probabilities, again["marginals"][name])

    def test_agrees_with_the_exact_answer(self):
        """The problem without its correlation against enumeration (:func:`exact_fit`), not a backend."""
        linear = copy.deepcopy(CONFORMANCE_PROBLEM)
        linear["estimates"] = [e for e in linear["estimates"] if e["estimate_type"] != "correlation"]
        builder = self.make_builder(linear)
        _, info = builder.build(target_variable="festival", progress=False)
        constraints = builder.compile()
        fitted = exact_fit_result(constraints)
        exact = {"marginals": fitted.marginals, "constraint_report": constraint_report(constraints, fitted)}
        assert abs(info["marginals"]["festival"][1] - exact["marginals"]["festival"][1]) <= self.tolerance
        for row, exact_row in zip(info["constraint_report"], exact["constraint_report"]):
            gap = abs(row["scaled_residual"] - exact_row["scaled_residual"])
            assert gap <= self.residual_tolerance, (row["id"], gap)

    def test_correlation_loop_agrees_with_maxent(self, built):
        """With the correlation, against the exact backend's fixed point (maxent's own loop is
        checked against a direct constrained maximisation in the core's correlation tests)."""
        if self.backend == "maxent":
            pytest.skip("maxent is the reference here")
        if not maxent_installed():
            pytest.skip("the maxent backend is not installed")
        _, _, info = built
        reference = DistributionBuilder(CONFORMANCE_PROBLEM["variables"], CONFORMANCE_PROBLEM["estimates"],
                                        backend="maxent")
        _, exact = reference.build(target_variable="festival", progress=False)
        assert abs(info["marginals"]["festival"][1] - exact["marginals"]["festival"][1]) <= self.tolerance
        for row, exact_row in zip(info["constraint_report"], exact["constraint_report"]):
            gap = abs(row["scaled_residual"] - exact_row["scaled_residual"])
            assert gap <= self.residual_tolerance, (row["id"], gap)

    def test_refit_from_a_warm_start_matches_a_fresh_fit(self):
        """``refit`` from a fit of other targets on the same scopes gives the fresh fit's answer."""
        builder = self.make_builder()
        hook = builder._plugins.hook
        before = builder.compile()
        after = self.make_builder(WARM_START_PROBLEM).compile()
        assert [c.scope for c in before.constraints] == [c.scope for c in after.constraints]
        previous = hook.fit(model=hook.compile_constraints(problem=before, config=builder.config),
                            config=builder.config, progress=None, provisional=False)
        model = hook.compile_constraints(problem=after, config=builder.config)
        warm = hook.refit(fitted=previous, model=model, config=builder.config, progress=None, provisional=False)
        assert warm is not None, f"backend {self.backend!r} does not implement the refit warm start"
        fresh = hook.fit(model=hook.compile_constraints(problem=after, config=builder.config),
                         config=builder.config, progress=None, provisional=False)
        tolerance = self.tolerance if self.warm_start_tolerance is None else self.warm_start_tolerance
        residual_tolerance = self.residual_tolerance if self.warm_start_tolerance is None else tolerance
        gap = abs(warm.marginals["festival"][1] - fresh.marginals["festival"][1])
        assert gap <= tolerance, gap
        warm_rows, fresh_rows = constraint_report(after, warm), constraint_report(after, fresh)
        for row, fresh_row in zip(warm_rows, fresh_rows):
            assert abs(row["scaled_residual"] - fresh_row["scaled_residual"]) <= residual_tolerance, row["id"]

    def test_confirmed_provisional_fit_is_the_full_fit(self):
        """A provisional fit after ``confirm`` is the fit the backend gives when not provisional.

        Same problem, config and seed: the marginals, ``converged`` and the warnings
        agree exactly; ``confirm`` only adds what the provisional fit left out.
        """
        from calibrated_response_plugins.correlations import confirmed

        builder = self.make_builder(WARM_START_PROBLEM)
        hook = builder._plugins.hook
        problem = builder.compile()
        full = hook.fit(model=hook.compile_constraints(problem=problem, config=builder.config),
                        config=builder.config, progress=None, provisional=False)
        model = hook.compile_constraints(problem=problem, config=builder.config)
        provisional = hook.fit(model=model, config=builder.config, progress=None, provisional=True)
        result = confirmed(hook, provisional, model, builder.config)
        assert result.converged == full.converged
        assert list(result.warnings) == list(full.warnings)
        for name, p in full.marginals.items():
            np.testing.assert_array_equal(result.marginals[name], p)

    def test_unknown_target_names_the_variables(self):
        with pytest.raises(ValueError, match="festival"):
            self.make_builder().build(target_variable="no_such_variable", progress=False)

    def test_bad_input_is_named(self):
        problem = copy.deepcopy(CONFORMANCE_PROBLEM)
        problem["estimates"][0]["probability"] = 1.5
        with pytest.raises(ModelInputError, match="p_rain.*probability"):
            self.make_builder(problem)
        with pytest.raises(ModelInputError, match="empty"):
            DistributionBuilder([], [], backend=self.backend)


class UniformBackend:
    """An in-process backend whose fit is the uniform joint (every multiplier 0).

    Its report means are exact under that joint, so tests of the core can check
    the builder and the CLI without a real backend::

        register_backend("uniform", UniformBackend())
    """

    def __init__(self, marginal_override: dict[str, Any] | None = None):
        self.marginal_override = marginal_override or {}

    @hookimpl
    def make_config(self, options):
        return config_from_options(CoreConfig, options)

    @hookimpl
    def compile_constraints(self, problem, config):
        return problem

    @hookimpl
    def fit(self, model, config, progress):
        means = [(c.report_numerator.mean(), c.report_denominator.mean()) for c in model.constraints]
        if progress is not None:
            progress(1, 1, {"max_error": 0.0})
        marginals = {d.name: np.full(d.n_states, 1 / d.n_states) for d in model.domains}
        marginals.update(self.marginal_override)
        return FitResult(lambdas=np.zeros(len(model.constraints)),
                         feature_means=[c.feature.mean() for c in model.constraints],
                         report_means=np.reshape(means, (-1, 2)), marginals=marginals, converged=True,
                         n_iterations=1, n_factors=len({c.scope for c in model.constraints}))

    @hookimpl
    def marginals(self, fitted):
        return fitted.marginals
