"""Hypothesis strategies and checks for fuzzing the models, the compiler and the builder.

Used by ``tests/test_fuzz.py`` (a short run) and ``benchmarks/fuzz.py`` (a long one).
Importing it needs ``hypothesis`` (the ``test`` extra).

A generated problem is a dict in the upstream JSON layout. ``wild`` problems mix in
values of the wrong type or out of range (None, numeric strings, lists, NaN, 10**400);
``tame`` ones keep every field well typed but reach for the extremes the limits allow
(sd=0, thresholds a float step apart, contradictory estimates, p of 0 or 1), so most of
them compile and fit. The checks state what must hold for any input: a named
:class:`~calibrated_response_plugins.models.ModelInputError` (or ``ValueError`` for a
config) or an answer whose every number is finite.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from hypothesis import strategies as st

from calibrated_response_plugins.compiler import MAX_S2, MIN_S2, compile_problem
from calibrated_response_plugins.config import CoreConfig
from calibrated_response_plugins.io import problem_from_dict, problem_to_dict
from calibrated_response_plugins.models import ModelInputError

NAMES = ("a", "b", "c")
ESTIMATE_TYPES = (
    "probability", "expectation", "conditional_probability", "conditional_expectation", "correlation", "equation",
)
#: Numbers at or beyond the edges of float64 and of the documented limits.
EXTREME_NUMBERS = (
    0, -0.0, 5e-324, -5e-324, 1e-300, 1e-150, 1e15, 1e15 + 0.5, 1e150, 1.5e150, 1e308, -1e308,
    10**400, -(10**400), math.nan, math.inf, -math.inf,
)
#: Values of the wrong type, including strings that look like numbers or booleans.
GARBAGE = (None, "0.25", " 0.25 ", "\u0661\u0662", "false", "no", "0", "", [], [1], {}, {"a": 1}, True, False, 5)
SDS = (0, 0.0, 1e-300, 1e-8, 0.1, 1.0, 3.0, 1e155, 1e200, 1e308)


def _mix(good: st.SearchStrategy, *pools: tuple, wild: bool) -> st.SearchStrategy:
    """Mostly ``good``; in a wild problem sometimes a value from each of ``pools``."""
    if not wild:
        return good
    return st.integers(0, 9).flatmap(lambda i: good if i < 7 else st.sampled_from(pools[i % len(pools)]))


def _maybe(fields: dict, key: str, value: Any, present: bool) -> None:
    if present:
        fields[key] = value


@st.composite
def variables(draw, wild: bool = False) -> dict[str, Any]:
    """One variable dict: binary, or continuous on a range from ordinary to the narrowest allowed."""
    name = draw(_mix(st.sampled_from(NAMES), GARBAGE, wild=wild))
    kind = draw(_mix(st.sampled_from(("binary", "continuous")), GARBAGE, wild=wild))
    data: dict[str, Any] = {"name": name, "type": kind}
    if kind != "continuous":
        return data
    lower = draw(st.floats(-50.0, 50.0, allow_nan=False) | st.sampled_from((0.0, 1e15, -1e149, 1e-140)))
    # Spans from the narrowest the limits allow (relative 1e-9) to wide ones.
    span = abs(lower) * draw(st.sampled_from((1.001e-9, 2e-9, 1e-6) if not wild else (1e-9, 1.001e-9, 1e-6))) + draw(st.sampled_from((0.0, 1.0, 7.5, 1e3)))
    span = span if span > 0 else 1.0
    upper = lower + span
    data["lower_bound"] = draw(_mix(st.just(lower), EXTREME_NUMBERS, GARBAGE, wild=wild))
    data["upper_bound"] = draw(_mix(st.just(upper), EXTREME_NUMBERS, GARBAGE, wild=wild))
    if wild and draw(st.integers(0, 9)) == 0:
        data.pop(draw(st.sampled_from(("lower_bound", "upper_bound"))))
    return data


Domains = dict[str, tuple[float, float] | None]  # name -> (lower, upper), None for a binary


def _on_domain(domain: tuple[float, float] | None, wild: bool) -> st.SearchStrategy:
    """A number inside, at the edge of, just past or a float step from a domain (a threshold or a mean)."""
    lower, upper = domain if domain is not None else (0.0, 1.0)
    span = upper - lower
    inside = st.floats(0.0, 1.0).map(lambda u: lower + u * span)
    edges = st.sampled_from((lower, upper, lower - 0.01 * span, upper + 1.0, lower + span / 2,
                             lower + span / 2 + 5e-324, np.nextafter(lower + span / 3, upper)))
    return _mix(inside | edges, EXTREME_NUMBERS, GARBAGE, wild=wild)


@st.composite
def propositions(draw, domains: Domains, wild: bool = False) -> dict[str, Any]:
    """An equality (on a truth value) or an inequality proposition dict on one of ``domains``' variables."""
    names = sorted(domains) or list(NAMES)
    variable = draw(_mix(st.sampled_from(names), GARBAGE, NAMES, wild=wild))
    domain = domains.get(variable) if isinstance(variable, str) else None
    # Mostly the proposition the variable's type supports; sometimes the other kind.
    equality = draw(st.integers(0, 9)) < (8 if domain is None else 1)
    if equality:
        value = draw(_mix(st.sampled_from((True, False, 1, 0, "yes", "no", "True")), GARBAGE, (0.5, "maybe"), wild=wild))
        data = {"proposition_type": "equality", "variable": variable, "value": value}
    else:
        direction = draw(_mix(st.booleans(), GARBAGE, wild=wild))
        key = draw(st.sampled_from(("is_lower_bound", "greater")))
        data = {"proposition_type": "inequality", "variable": variable,
                "threshold": draw(_on_domain(domain, wild)), key: direction}
    if wild and draw(st.integers(0, 19)) == 0:
        data["proposition_type"] = draw(st.sampled_from(GARBAGE + ("range",)))
    return data


@st.composite
def estimates(draw, index: int, domains: Domains, wild: bool = False) -> dict[str, Any]:
    """One estimate dict of any type on ``domains``' variables, its numbers drawn toward the extremes."""
    names = sorted(domains) or list(NAMES)
    # The four moment types mostly: correlation and equation estimates are only skipped.
    kind = draw(_mix(st.sampled_from(ESTIMATE_TYPES[:4] * 4 + ESTIMATE_TYPES[4:]), GARBAGE, wild=wild))
    data: dict[str, Any] = {"id": draw(_mix(st.just(f"e{index}"), GARBAGE, wild=wild)), "estimate_type": kind}
    probability = _mix(st.floats(0.0, 1.0) | st.sampled_from((0.0, 1.0, 1e-300, 0.5)), EXTREME_NUMBERS, GARBAGE,
                       wild=wild)
    variable = draw(_mix(st.sampled_from(names), GARBAGE, NAMES, wild=wild))
    conditions = _mix(st.lists(propositions(domains, wild), max_size=2), GARBAGE, wild=wild)
    if kind in ("probability", "conditional_probability"):
        data["proposition"] = draw(_mix(propositions(domains, wild), GARBAGE, wild=wild))
        data["probability"] = draw(probability)
    if kind in ("expectation", "conditional_expectation"):
        data["variable"] = variable
        domain = domains.get(variable) if isinstance(variable, str) else None
        data["expected_value"] = draw(_on_domain(domain, wild))
    if kind in ("conditional_probability", "conditional_expectation"):
        data["conditions"] = draw(conditions)
    if kind == "correlation":
        data.update(variable_a=variable, variable_b=draw(st.sampled_from(names)),
                    correlation=draw(_mix(st.floats(-1.0, 1.0), EXTREME_NUMBERS, wild=wild)))
    if kind == "equation":
        data.update(lhs=variable, rhs="a + b")
    _maybe(data, "sd", draw(_mix(st.sampled_from(SDS), EXTREME_NUMBERS, GARBAGE, wild=wild)), draw(st.booleans()))
    _maybe(data, "relation", draw(_mix(st.sampled_from(("eq", "le", "ge")), GARBAGE, wild=wild)),
           draw(st.booleans()))
    _maybe(data, "n", draw(_mix(st.integers(0, 1000), EXTREME_NUMBERS, GARBAGE, wild=wild)), draw(st.booleans()))
    return data


def _domains(variable_dicts: list[Any]) -> Domains:
    """The well-formed variables' domains, by name (what estimates can refer to)."""
    domains: Domains = {}
    for variable in variable_dicts:
        if not isinstance(variable, dict) or not isinstance(variable.get("name"), str):
            continue
        bounds = (variable.get("lower_bound"), variable.get("upper_bound"))
        if variable.get("type") == "binary":
            domains[variable["name"]] = None
        elif all(isinstance(b, float) and math.isfinite(b) for b in bounds) and bounds[0] < bounds[1]:
            domains[variable["name"]] = bounds
    return domains


@st.composite
def problems(draw, wild: bool = False, max_variables: int = 3, max_estimates: int = 5) -> dict[str, Any]:
    """A problem dict: up to ``max_variables`` variables and ``max_estimates`` estimates."""
    n_variables = draw(st.integers(1 if not wild else 0, max_variables))
    data: dict[str, Any] = {"variables": [draw(variables(wild)) for _ in range(n_variables)]}
    if not wild:  # distinct names, so that tame problems compile
        for index, variable in enumerate(data["variables"]):
            variable["name"] = NAMES[index]
    n_estimates = draw(st.integers(0, max_estimates))
    domains = _domains(data["variables"])
    data["estimates"] = [draw(estimates(index, domains, wild)) for index in range(n_estimates)]
    if wild and draw(st.integers(0, 9)) == 0:
        data[draw(st.sampled_from(("variables", "estimates")))] = draw(st.sampled_from(GARBAGE))
    return data


def configs(wild: bool = True) -> st.SearchStrategy:
    """Option mappings (and non-mappings) for ``make_config``."""
    values = st.sampled_from(EXTREME_NUMBERS + GARBAGE + (1, 2, 3, 10, 21, 500, 1001, 10**6, 0.5, 1e-30, -1)) | st.sampled_from((1, 2, 3, 10, 21, 0.5, 1e-3))
    keys = st.sampled_from((
        "max_bins", "max_arity", "l2_regularization", "seed", "num_chains", "num_iterations", "chunk_size",
        "temperature", "scope_threshold", "learning_rate", "logit_clip", "burn_in_sweeps", "final_sweeps",
        "max_final_sweeps", "mcmc_steps_per_iteration", "polish_steps", "gtol", "max_iterations", "unknown",
    ))
    mapping = st.dictionaries(keys, values, max_size=4)
    if not wild:
        return mapping
    return mapping | st.sampled_from(([1], "abc", 5, {1: 2, "a": 3}, None))


# --------------------------------------------------------------------------- checks


def read_problem(data: Mapping[str, Any]):
    """The problem, or None where it was refused with a :class:`ModelInputError`.

    Any other exception is a defect and propagates. An accepted problem must
    round-trip through its own JSON layout.
    """
    try:
        problem = problem_from_dict(data)
    except ModelInputError as error:
        assert str(error), "an error without a message"
        return None
    assert problem_from_dict(problem_to_dict(problem)) == problem
    return problem


def check_compiled(problem, config: CoreConfig):
    """Compile; every number of every constraint finite, ``s^2`` within its limits, no estimate lost."""
    try:
        compiled = compile_problem(problem.variables, problem.estimates, config)
    except ModelInputError:
        return None
    assert len(compiled.constraints) + len(compiled.correlations) + len(compiled.skipped) == len(problem.estimates)
    for domain in compiled.domains:
        assert np.all(np.isfinite(domain.bin_edges)) and np.all(np.diff(domain.bin_edges) > 0), domain.name
        assert np.all(np.isfinite(domain.values)), domain.name
    for constraint in compiled.constraints:
        for table in (constraint.feature, constraint.report_numerator, constraint.report_denominator):
            assert np.all(np.isfinite(table)), constraint.id
        assert math.isfinite(constraint.target) and math.isfinite(constraint.report_target), constraint.id
        assert MIN_S2 <= constraint.s2 <= MAX_S2, (constraint.id, constraint.s2)
    for correlation in compiled.correlations:
        assert math.isfinite(correlation.correlation), correlation.id
        # s^2 in h's units: the correlation units' [MIN_S2, MAX_S2] times both spreads squared (at most 1/16)
        assert 0.0 < correlation.s2 <= MAX_S2, (correlation.id, correlation.s2)
    again = compile_problem(problem.variables, problem.estimates, config)
    assert again.skipped == compiled.skipped and again.warnings == compiled.warnings
    return compiled


def _finite_numbers(value: Any, where: str) -> None:
    """Every float in a nested structure of dicts and lists is finite."""
    if isinstance(value, float):
        assert math.isfinite(value), where
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _finite_numbers(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _finite_numbers(item, f"{where}[{index}]")


def check_built(histogram, info: Mapping[str, Any]) -> None:
    """Marginals are probability vectors on finite increasing edges; the report holds finite numbers or None."""
    for name, probabilities in info["marginals"].items():
        array = np.asarray(probabilities)
        assert np.all(np.isfinite(array)) and np.all(array >= 0) and math.isclose(array.sum(), 1.0, abs_tol=1e-9), name
    for edges in info["bin_edges_list"]:
        assert np.all(np.isfinite(edges)) and np.all(np.diff(edges) > 0)
    _finite_numbers(info["constraint_report"], "constraint_report")
    for row in info["constraint_report"]:
        assert row["fitted"] is not None or any(row["id"] in w for w in info["warnings"]), row
        # At the optimum |lambda_k| = |E[g_k] - c_k| / s_k^2, and |E[g_k] - c_k| <= 2 for tables in [-1, 1].
        assert not info["converged"] or abs(row["lambda"]) <= 2.0 / MIN_S2, row
    assert math.isfinite(histogram.mean()) and math.isfinite(histogram.std())
