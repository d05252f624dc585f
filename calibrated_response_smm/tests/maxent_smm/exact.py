"""Brute-force reference: enumerate the joint of a small ConstraintSet and solve its dual exactly."""

from __future__ import annotations

import numpy as np
import scipy.optimize


def _expand(table: np.ndarray, scope, n_vars: int) -> np.ndarray:
    """Reshape a scope table so it broadcasts against the full joint."""
    shape = [1] * n_vars
    for axis, var in enumerate(scope):
        shape[var] = table.shape[axis]
    return table.reshape(shape)


def joint_log_weights(problem, lambdas) -> np.ndarray:
    """Unnormalised log p(x) = sum_k lambda_k g_k(x) over the full state grid."""
    n_vars = len(problem.domains)
    logits = np.zeros(problem.n_states)
    for lam, constraint in zip(lambdas, problem.constraints):
        logits = logits + lam * _expand(constraint.feature, constraint.scope, n_vars)
    return logits


def joint(problem, lambdas) -> np.ndarray:
    logits = joint_log_weights(problem, lambdas)
    p = np.exp(logits - logits.max())
    return p / p.sum()


def scope_mean(p: np.ndarray, table: np.ndarray, scope) -> float:
    """E[table(x_scope)] under the joint ``p``."""
    others = tuple(i for i in range(p.ndim) if i not in scope)
    return float(np.sum(p.sum(axis=others) * table))


def feature_means(problem, lambdas) -> np.ndarray:
    p = joint(problem, lambdas)
    return np.array([scope_mean(p, c.feature, c.scope) for c in problem.constraints])


def marginals(problem, lambdas) -> dict[str, np.ndarray]:
    p = joint(problem, lambdas)
    out = {}
    for i, domain in enumerate(problem.domains):
        others = tuple(j for j in range(p.ndim) if j != i)
        out[domain.name] = p.sum(axis=others)
    return out


def solve_dual(problem, tol: float = 1e-10):
    """Minimise log Z - lambda.c + 1/2 s2 lambda^2 with L-BFGS-B; return (lambdas, feature means)."""
    targets = problem.targets
    s2 = problem.s2
    n_vars = len(problem.domains)
    features = [(_expand(c.feature, c.scope, n_vars)) for c in problem.constraints]

    def objective(lam):
        logits = np.zeros(problem.n_states)
        for value, feature in zip(lam, features):
            logits = logits + value * feature
        top = logits.max()
        w = np.exp(logits - top)
        z = w.sum()
        p = w / z
        means = np.array([scope_mean(p, c.feature, c.scope) for c in problem.constraints])
        value = np.log(z) + top - lam @ targets + 0.5 * np.sum(s2 * lam**2)
        return value, means - targets + s2 * lam

    result = scipy.optimize.minimize(
        objective,
        np.zeros(len(targets)),
        jac=True,
        method="L-BFGS-B",
        bounds=problem.lambda_bounds(),
        options={"ftol": tol, "gtol": 1e-9, "maxiter": 5000},
    )
    return result.x, feature_means(problem, result.x)


def graph_joint(graph) -> np.ndarray:
    """The normalised joint of a ``FactorGraph`` by enumeration (its factor tables are log-potentials)."""
    logits = np.zeros(graph.sizes)
    for factor in graph.factors:
        shape = [1] * graph.n_vars
        for axis, v in enumerate(factor.var_ids):
            shape[v] = factor.table_shape[axis]
        logits = logits + factor.parameters.reshape(shape)
    p = np.exp(logits - logits.max())
    return p / p.sum()
