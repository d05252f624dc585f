"""The constraint compiler: estimates -> linear moment constraints (docs/semantics.md).

Each usable estimate becomes one feature table ``g_k`` over the variables it
mentions and a target ``c_k``; an unusable one becomes a skip reason
``"<estimate id>: <reason>"``. The output :class:`ConstraintSet` is what every
backend fits, so all backends solve the same problem.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from calibrated_response_plugins.config import CoreConfig
from calibrated_response_plugins.constraints import Constraint, ConstraintSet, Domain
from calibrated_response_plugins.models import (
    ConditionalExpectationEstimate,
    ConditionalProbabilityEstimate,
    CorrelationEstimate,
    EqualityProposition,
    ExpectationEstimate,
    InequalityProposition,
    ModelInputError,
    ProbabilityEstimate,
    Proposition,
    Variable,
    coerce_estimates,
    coerce_variables,
)

#: Smallest ``s_k^2``: an ``sd`` of 0 (or ``l2_regularization`` 0) means "as exact as the
#: solver can". The floor keeps every multiplier finite (at most ~|E[g] - c| / MIN_S2) and the
#: dual's Hessian invertible even for contradictory exact estimates; at 1e-6 such multipliers
#: (2e5 for 0.3 against 0.7) still cancel to 0.02 nats in smm's float32. See docs/limits.md.
MIN_S2 = 1e-6
#: Largest ``s_k^2``: an estimate this loose pulls its multiplier to ~0 already; the cap
#: keeps huge ``sd`` values (1e200) from overflowing when squared.
MAX_S2 = 1e12
#: Fractions of a bin closer than this to 0 or 1 are taken as 0 or 1: an interval
#: narrower than the float step of its bins (width 5e-324) is empty, not a NaN ratio.
WEIGHT_RESOLUTION = 1e-9

#: Most cells in one constraint's table (the product of its scope's state counts): a
#: larger scope is skipped rather than built (each table is several float64 arrays).
MAX_TABLE_CELLS = 2**22

_TRUE_STRINGS = {"true", "yes", "1"}
_FALSE_STRINGS = {"false", "no", "0"}


def clamped_s2(scale: float) -> float:
    """``scale**2`` held to ``[MIN_S2, MAX_S2]``; the clamp comes before the square so it cannot overflow."""
    scale = min(abs(float(scale)), math.sqrt(MAX_S2))
    return max(scale * scale, MIN_S2)


class SkipEstimate(Exception):
    """Raised inside the compiler when an estimate is well-formed but unusable."""


# --------------------------------------------------------------------------- domains


def make_domain(variable: Variable, max_bins: int) -> Domain:
    """States of one variable: 0/1 for a binary, ``max_bins`` equal bins for a continuous one."""
    if variable.type == "binary":
        return Domain(variable.name, "binary", [0.0, 0.5, 1.0], [0.0, 1.0], 0.0, 1.0)
    edges = np.linspace(variable.lower_bound, variable.upper_bound, max_bins + 1)
    centres = 0.5 * (edges[:-1] + edges[1:])
    return Domain(variable.name, "continuous", edges, centres, variable.lower_bound, variable.upper_bound)


def make_domains(variables: Sequence[Variable], max_bins: int) -> tuple[Domain, ...]:
    if len(variables) == 0:
        raise ModelInputError("the variable list is empty; give at least one variable")
    seen: set[str] = set()
    for variable in variables:
        if variable.name in seen:
            raise ModelInputError(f"variable {variable.name!r}: duplicate variable name")
        seen.add(variable.name)
    return tuple(make_domain(v, max_bins) for v in variables)


def _describe_domain(domain: Domain) -> str:
    if domain.kind == "binary":
        return f"binary {domain.name!r}"
    return f"{domain.name!r} on [{domain.lower:g}, {domain.upper:g}]"


# --------------------------------------------------------------------------- events


def describe(proposition: Proposition) -> str:
    if isinstance(proposition, EqualityProposition):
        return f"{proposition.variable} = {proposition.value}"
    return f"{proposition.variable} {'>' if proposition.is_lower_bound else '<'} {proposition.threshold:g}"


def truth_value(value: Any) -> bool | None:
    """Read an equality value as True/False (bools, 1/0, true/false/yes/no in any case); else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE_STRINGS:
            return True
        if lowered in _FALSE_STRINGS:
            return False
    return None


def interval_weights(domain: Domain, low: float, high: float) -> np.ndarray:
    """Weight of each state for the event ``low < X < high``.

    Continuous: the fraction of each bin inside the interval (mass is uniform in
    a bin). Binary: 1 where the state's value lies strictly inside.
    """
    if domain.kind == "binary":
        return ((domain.values > low) & (domain.values < high)).astype(np.float64)
    left, right = domain.bin_edges[:-1], domain.bin_edges[1:]
    overlap = np.minimum(right, high) - np.maximum(left, low)
    weights = np.clip(overlap / (right - left), 0.0, 1.0)
    weights[weights < WEIGHT_RESOLUTION] = 0.0
    weights[weights > 1.0 - WEIGHT_RESOLUTION] = 1.0
    return weights


def variable_weights(domain: Domain, propositions: Sequence[Proposition]) -> np.ndarray:
    """Weights of the conjunction of ``propositions`` (all on ``domain``'s variable)."""
    weights = np.ones(domain.n_states)
    low, high = -np.inf, np.inf
    for proposition in propositions:
        if isinstance(proposition, InequalityProposition):
            if proposition.is_lower_bound:
                low = max(low, proposition.threshold)
            else:
                high = min(high, proposition.threshold)
            continue
        if domain.kind != "binary":
            raise SkipEstimate(
                f"equality proposition '{describe(proposition)}' on continuous {_describe_domain(domain)} "
                "is not supported"
            )
        truth = truth_value(proposition.value)
        if truth is None:
            raise SkipEstimate(
                f"equality value {proposition.value!r} on {_describe_domain(domain)} is not a truth value"
            )
        weights = weights * (domain.values == float(truth))
    return weights * interval_weights(domain, low, high)


def _group_by_variable(propositions: Iterable[Proposition]) -> dict[str, list[Proposition]]:
    grouped: dict[str, list[Proposition]] = {}
    for proposition in propositions:
        grouped.setdefault(proposition.variable, []).append(proposition)
    return grouped


def event_table(
    domains: Sequence[Domain], scope: tuple[int, ...], propositions: Sequence[Proposition]
) -> np.ndarray:
    """Weight table over ``scope`` of a conjunction; variables it does not mention get weight 1."""
    grouped = _group_by_variable(propositions)
    table = np.ones(())
    for index in scope:
        domain = domains[index]
        weights = variable_weights(domain, grouped.get(domain.name, ()))
        table = np.multiply.outer(table, weights)
    return table


def _check_not_fixed(domain: Domain, proposition: Proposition, role: str) -> None:
    """Skip an event or condition that is impossible or certain on its variable's domain."""
    weights = variable_weights(domain, [proposition])
    if not weights.any():
        raise SkipEstimate(f"{role} '{describe(proposition)}' is impossible on {_describe_domain(domain)}")
    if np.all(weights == 1.0):
        raise SkipEstimate(f"{role} '{describe(proposition)}' is certain on {_describe_domain(domain)}")


# --------------------------------------------------------------------------- estimates


class _Compiler:
    """Compiles estimates one at a time against fixed domains and settings."""

    def __init__(self, domains: tuple[Domain, ...], max_arity: int, l2_regularization: float,
                 supported_arity: tuple[str, int] | None = None):
        self.domains = domains
        self.index = {d.name: i for i, d in enumerate(domains)}
        self.max_arity = max_arity
        self.supported_arity = supported_arity  # (config class name, widest scope its backend fits)
        self.l2 = min(max(float(l2_regularization), MIN_S2), MAX_S2)
        self.warnings: list[str] = []

    def domain(self, name: str) -> Domain:
        if name not in self.index:
            raise SkipEstimate(f"refers to unknown variable {name!r}")
        return self.domains[self.index[name]]

    def scope_of(self, names: Iterable[str]) -> tuple[int, ...]:
        scope = tuple(sorted({self.index[n] for n in names}))
        if len(scope) > self.max_arity:
            raise SkipEstimate(
                f"mentions {len(scope)} variables, more than max_arity={self.max_arity}"
            )
        if self.supported_arity is not None and len(scope) > self.supported_arity[1]:
            owner, limit = self.supported_arity
            raise SkipEstimate(
                f"mentions {len(scope)} variables, more than the backend fits ({owner}.supported_arity={limit})"
            )
        cells = math.prod(self.domains[i].n_states for i in scope)
        if cells > MAX_TABLE_CELLS:
            raise SkipEstimate(
                f"its table over {len(scope)} variables would have {cells:,} cells, more than "
                f"{MAX_TABLE_CELLS:,}; use fewer bins (max_bins)"
            )
        return scope

    def checked_propositions(self, propositions: Sequence[Proposition], role: str) -> None:
        for proposition in propositions:
            _check_not_fixed(self.domain(proposition.variable), proposition, role)

    def s2_probability(self, sd: float | None, p: float) -> float:
        # Upstream sd on a probability is in log-odds; d p / d logit = p (1 - p).
        return self.l2 if sd is None else clamped_s2(sd * p * (1.0 - p))

    def s2_expectation(self, sd: float | None, domain: Domain) -> float:
        return self.l2 if sd is None else clamped_s2(sd / domain.span)

    def compile(self, estimate: Any) -> Constraint:
        if isinstance(estimate, ProbabilityEstimate):
            return self.probability(estimate)
        if isinstance(estimate, ConditionalProbabilityEstimate):
            return self.conditional_probability(estimate)
        if isinstance(estimate, ExpectationEstimate):
            return self.expectation(estimate)
        if isinstance(estimate, ConditionalExpectationEstimate):
            return self.conditional_expectation(estimate)
        raise SkipEstimate(f"estimate_type {estimate.estimate_type!r} is not supported by the moment compiler")

    def probability(self, estimate: ProbabilityEstimate) -> Constraint:
        event = estimate.proposition
        self.checked_propositions([event], "event")
        scope = self.scope_of([event.variable])
        weights = event_table(self.domains, scope, [event])
        return Constraint(
            id=estimate.id, estimate_type=estimate.estimate_type, relation=estimate.relation,
            scope=scope, feature=weights, target=estimate.probability,
            s2=self.s2_probability(estimate.sd, estimate.probability),
            report_numerator=weights, report_denominator=np.ones_like(weights),
            report_target=estimate.probability,
        )

    def conditional_probability(self, estimate: ConditionalProbabilityEstimate) -> Constraint:
        event, conditions = estimate.proposition, list(estimate.conditions)
        self.checked_propositions([event], "event")
        self.checked_propositions(conditions, "condition")
        scope = self.scope_of([event.variable, *(c.variable for c in conditions)])
        given = event_table(self.domains, scope, conditions)
        joint = event_table(self.domains, scope, [event, *conditions])
        self.check_conditioning(estimate.id, given, joint, event, conditions)
        p = estimate.probability
        return Constraint(
            id=estimate.id, estimate_type=estimate.estimate_type, relation=estimate.relation,
            scope=scope, feature=joint - p * given, target=0.0,
            s2=self.s2_probability(estimate.sd, p),
            report_numerator=joint, report_denominator=given, report_target=p,
        )

    def check_conditioning(self, estimate_id, given, joint, event, conditions) -> None:
        condition_text = " and ".join(f"'{describe(c)}'" for c in conditions) or "no condition"
        if not given.any():
            raise SkipEstimate(f"the conditions {condition_text} cannot hold together")
        if not joint.any():
            raise SkipEstimate(f"event '{describe(event)}' cannot hold together with {condition_text}")
        if np.allclose(joint, given, rtol=0.0, atol=1e-12):
            raise SkipEstimate(f"event '{describe(event)}' is certain given {condition_text}")

    def expectation(self, estimate: ExpectationEstimate) -> Constraint:
        domain = self.domain(estimate.variable)
        scope = self.scope_of([estimate.variable])
        mu = estimate.expected_value
        self.check_expected_value(estimate.id, domain, mu, np.ones(domain.n_states))
        rescaled = domain.rescale(domain.values)
        return Constraint(
            id=estimate.id, estimate_type=estimate.estimate_type, relation=estimate.relation,
            scope=scope, feature=rescaled, target=float(domain.rescale(mu)),
            s2=self.s2_expectation(estimate.sd, domain),
            report_numerator=rescaled, report_denominator=np.ones(domain.n_states),
            report_target=mu, report_offset=domain.lower, report_scale=domain.span,
        )

    def conditional_expectation(self, estimate: ConditionalExpectationEstimate) -> Constraint:
        domain = self.domain(estimate.variable)
        conditions = list(estimate.conditions)
        self.checked_propositions(conditions, "condition")
        scope = self.scope_of([estimate.variable, *(c.variable for c in conditions)])
        given = event_table(self.domains, scope, conditions)
        if not given.any():
            condition_text = " and ".join(f"'{describe(c)}'" for c in conditions)
            raise SkipEstimate(f"the conditions {condition_text} cannot hold together")
        axis = scope.index(self.index[domain.name])
        other_axes = tuple(a for a in range(len(scope)) if a != axis)
        reachable = given.sum(axis=other_axes) > 0 if other_axes else given > 0
        mu = estimate.expected_value
        self.check_expected_value(estimate.id, domain, mu, reachable)
        shape = [1] * len(scope)
        shape[axis] = domain.n_states
        rescaled = domain.rescale(domain.values).reshape(shape)
        numerator = given * rescaled
        return Constraint(
            id=estimate.id, estimate_type=estimate.estimate_type, relation=estimate.relation,
            scope=scope, feature=numerator - float(domain.rescale(mu)) * given, target=0.0,
            s2=self.s2_expectation(estimate.sd, domain),
            report_numerator=numerator, report_denominator=given,
            report_target=mu, report_offset=domain.lower, report_scale=domain.span,
        )

    def check_expected_value(self, estimate_id: str, domain: Domain, mu: float, reachable) -> None:
        """Skip a mean outside the reachable range; warn when it lies beyond the outer bin centres."""
        states = np.flatnonzero(reachable)
        low, high = domain.bin_edges[states[0]], domain.bin_edges[states[-1] + 1]
        if domain.kind == "binary":
            low, high = domain.values[states[0]], domain.values[states[-1]]
        if not low <= mu <= high:
            raise SkipEstimate(
                f"expected value {mu:g} lies outside the range [{low:g}, {high:g}] that "
                f"{_describe_domain(domain)} can take here"
            )
        first, last = domain.values[states[0]], domain.values[states[-1]]
        if not first <= mu <= last:
            self.warnings.append(
                f"{estimate_id}: expected value {mu:g} lies beyond the outermost bin centres "
                f"[{first:g}, {last:g}] of {_describe_domain(domain)}; the l2 term keeps the fit "
                "finite and puts as much mass at that edge as the penalty allows"
            )


def compile_problem(variables: Sequence[Any], estimates: Sequence[Any], config: Any = None) -> ConstraintSet:
    """Compile variables and estimates into the :class:`ConstraintSet` every backend fits.

    ``config`` is any object with ``max_bins``, ``max_arity`` and
    ``l2_regularization`` (defaults: :class:`CoreConfig`). Malformed input
    raises :class:`~calibrated_response_plugins.models.ModelInputError`;
    well-formed but unusable estimates are skipped with a reason, in input order.
    """
    config = CoreConfig() if config is None else config
    variables = coerce_variables(variables)
    estimates = coerce_estimates(estimates)
    domains = make_domains(variables, config.max_bins)
    supported = getattr(config, "supported_arity", None)
    compiler = _Compiler(domains, config.max_arity, config.l2_regularization,
                         None if supported is None else (type(config).__name__, int(supported)))
    constraints, skipped, correlations = [], [], []
    for estimate in estimates:
        try:
            if isinstance(estimate, CorrelationEstimate):
                correlations.append((len(skipped), compile_correlation(compiler, estimate)))
            else:
                constraints.append(compiler.compile(estimate))
        except SkipEstimate as reason:
            skipped.append(f"{estimate.id}: {reason}")
    kept = drop_pinned_correlations(compiler, constraints, correlations, skipped)
    return ConstraintSet(domains, constraints, skipped, compiler.warnings, kept)


# --------------------------------------------------------------------------- correlations


def compile_correlation(compiler: _Compiler, estimate: CorrelationEstimate):
    """A :class:`~calibrated_response_plugins.correlations.CorrelationConstraint`, or a skip."""
    from calibrated_response_plugins.correlations import CorrelationConstraint, correlation_s2, rescaled_values

    if estimate.variable_a == estimate.variable_b:
        raise SkipEstimate(f"a correlation of variable {estimate.variable_a!r} with itself is always 1")
    domains = [compiler.domain(estimate.variable_a), compiler.domain(estimate.variable_b)]
    scope = compiler.scope_of([estimate.variable_a, estimate.variable_b])
    domains.sort(key=lambda d: compiler.index[d.name])
    tables = [rescaled_values(d) for d in domains]
    return CorrelationConstraint(
        id=estimate.id, relation=estimate.relation, scope=scope, names=[d.name for d in domains],
        correlation=estimate.correlation, s2=correlation_s2(estimate.sd, compiler.l2, domains),
        values=[t[0] for t in tables], within=[t[1] for t in tables],
    )


def drop_pinned_correlations(compiler: _Compiler, constraints, correlations, skipped: list[str]) -> list:
    """Skip correlations on a variable the probability estimates make constant; keep the rest.

    ``correlations`` holds ``(number of skips before it, constraint)`` so a skip is
    inserted at its estimate's place and ``skipped`` stays in input order.
    """
    from calibrated_response_plugins.correlations import pinned_reason

    kept, inserted = [], 0
    for position, correlation in correlations:
        reasons = [pinned_reason(constraints, compiler.domains[i], i) for i in correlation.scope]
        reason = next((r for r in reasons if r is not None), None)
        if reason is None:
            kept.append(correlation)
        else:
            skipped.insert(position + inserted, f"{correlation.id}: {reason}")
            inserted += 1
    return kept
