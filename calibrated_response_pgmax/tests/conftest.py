"""Hand-made constraint sets and a brute-force reference (dense joint, exact dual by L-BFGS-B).

Exposed to the tests as the ``build`` and ``exact`` fixtures, so they need
neither the core compiler nor the maxent backend.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import logsumexp

from calibrated_response_plugins.constraints import Constraint, ConstraintSet, Domain


def binary(name: str) -> Domain:
    return Domain(name=name, kind="binary", bin_edges=[0.0, 0.5, 1.0], values=[0.0, 1.0], lower=0.0, upper=1.0)


def continuous(name: str, lower: float, upper: float, bins: int) -> Domain:
    edges = np.linspace(lower, upper, bins + 1)
    return Domain(name=name, kind="continuous", bin_edges=edges, values=(edges[:-1] + edges[1:]) / 2,
                  lower=lower, upper=upper)


def table_constraint(cid, scope, feature, target, relation="eq", s2=1e-3) -> Constraint:
    """A constraint whose report is ``E[feature]`` itself."""
    feature = np.asarray(feature, dtype=float)
    return Constraint(id=cid, estimate_type="probability", relation=relation, scope=tuple(scope),
                      feature=feature, target=float(target), s2=s2, report_numerator=feature,
                      report_denominator=np.ones_like(feature), report_target=float(target))


def conditional_constraint(cid, scope, event_a_and_c, event_c, p, relation="eq", s2=1e-3) -> Constraint:
    """``P(A | C) = p`` in the centred form ``w_AC - p w_C`` with target 0."""
    a_c = np.asarray(event_a_and_c, dtype=float)
    c = np.broadcast_to(np.asarray(event_c, dtype=float), a_c.shape).copy()
    return Constraint(id=cid, estimate_type="conditional_probability", relation=relation, scope=tuple(scope),
                      feature=a_c - p * c, target=0.0, s2=s2, report_numerator=a_c, report_denominator=c,
                      report_target=p)


def joint_features(problem: ConstraintSet) -> np.ndarray:
    """Dense ``[n_joint_states, K]`` matrix of every feature on every joint state."""
    shape = problem.n_states
    states = np.array(list(itertools.product(*[range(n) for n in shape])))
    columns = [c.feature[tuple(states[:, i] for i in c.scope)] for c in problem.constraints]
    return np.stack(columns, axis=1) if columns else np.zeros((len(states), 0))


def exact_fit(problem: ConstraintSet):
    """Exact dual solution: ``(lambdas, {name: marginal}, feature_means)`` by enumeration."""
    features = joint_features(problem)
    targets, s2 = problem.targets, problem.s2

    def dual(lam):
        scores = features @ lam
        log_z = logsumexp(scores)
        p = np.exp(scores - log_z)
        value = log_z - lam @ targets + 0.5 * np.sum(s2 * lam**2)
        return value, features.T @ p - targets + s2 * lam

    result = minimize(dual, np.zeros(len(targets)), jac=True, method="L-BFGS-B",
                      bounds=problem.lambda_bounds(), options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 10000})
    scores = features @ result.x
    p = np.exp(scores - logsumexp(scores)).reshape(problem.n_states)
    marginals = {}
    for i, d in enumerate(problem.domains):
        marginals[d.name] = p.sum(axis=tuple(a for a in range(p.ndim) if a != i))
    return result.x, marginals, features.T @ p.reshape(-1)


def max_marginal_error(marginals_a, marginals_b) -> float:
    return max(float(np.max(np.abs(np.asarray(marginals_a[k]) - marginals_b[k]))) for k in marginals_b)


@pytest.fixture(scope="session")
def build():
    return SimpleNamespace(binary=binary, continuous=continuous, table_constraint=table_constraint,
                           conditional_constraint=conditional_constraint, ConstraintSet=ConstraintSet)


@pytest.fixture(scope="session")
def exact():
    return SimpleNamespace(fit=exact_fit, max_marginal_error=max_marginal_error)
