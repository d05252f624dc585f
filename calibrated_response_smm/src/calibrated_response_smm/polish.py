"""A Newton polish of the averaged multipliers on precise final moments (host side, float64).

It runs where a condition is rare (below) or where the final means show the
averaged multipliers off the optimum by more than their own noise (chains that mix
slowly make the search's moments, so its multipliers, noisier than they look).

The averaged multipliers carry the Monte Carlo noise of the search. For a conditional
with a rare condition that noise is what the report sees: its residual in ratio terms
is ``(c_k - E[g_k] - s_k^2 lambda_k) / P(C)``, so an error in ``E[g_k]`` during the
search is amplified by ``1 / P(C)``. The final estimate measures those factors'
moments scope-wise to a small relative error; a Newton step on the dual from those
moments,

    (Cov(g) + diag(s^2)) d = c - E[g] - s^2 lambda,

moves the multipliers to where the precise moments say the optimum is. Within one
factor the covariance is exact from the factor's table moment; across factors it
comes from the chains.
"""

from __future__ import annotations

import numpy as np

from .targets import MomentTargets


def feature_means(targets: MomentTargets, table_moments) -> np.ndarray:
    """``E[g_k]`` from the per-factor table moments."""
    return np.array([float(np.sum(table_moments[c.factor_id] * c.feature)) for c in targets.constraints])


def denominators(targets: MomentTargets, table_moments) -> np.ndarray:
    """``E[denominator_k]`` of ratio constraints (``P(C)``), 1 for plain means."""
    return np.array([
        1.0 if c.denominator is None else float(np.sum(table_moments[c.factor_id] * c.denominator))
        for c in targets.constraints
    ])


def sign_bounds(targets: MomentTargets) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper multiplier bounds: ``>= 0`` for "ge", ``<= 0`` for "le"."""
    relations = [c.relation for c in targets.constraints]
    lower = np.array([0.0 if r == "ge" else -np.inf for r in relations])
    upper = np.array([0.0 if r == "le" else np.inf for r in relations])
    return lower, upper


def held_at_bound(targets: MomentTargets, lambdas, grad) -> np.ndarray:
    """Multipliers at a sign bound whose gradient pushes them further out."""
    lower, upper = sign_bounds(targets)
    lam = np.asarray(lambdas, np.float64)
    return ((lam <= lower) & (grad < 0)) | ((lam >= upper) & (grad > 0))


def dual_gradient(targets: MomentTargets, lambdas, table_moments) -> np.ndarray:
    """``c - E[g] - s^2 lambda``, zero where a sign bound is rightly active."""
    s2 = np.array([c.s2 for c in targets.constraints])
    grad = targets.targets - feature_means(targets, table_moments) - s2 * np.asarray(lambdas, np.float64)
    return np.where(held_at_bound(targets, lambdas, grad), 0.0, grad)


def scaled_gradient(targets: MomentTargets, lambdas, table_moments) -> np.ndarray:
    """The dual gradient in report units (a ratio's residual divided by ``P(C)``)."""
    scale = np.maximum(denominators(targets, table_moments), 1e-300)
    return dual_gradient(targets, lambdas, table_moments) / scale


def scaled_gradient_norm(targets: MomentTargets, lambdas, table_moments) -> float:
    """Norm of :func:`scaled_gradient`, scaled by its largest entry first: a ratio whose
    ``P(C)`` estimate is near zero gives entries whose squares overflow float64."""
    gradient = scaled_gradient(targets, lambdas, table_moments)
    top = float(np.max(np.abs(gradient), initial=0.0))
    if top == 0.0 or not np.isfinite(top):
        return top
    return top * float(np.linalg.norm(gradient / top))


def dual_hessian(targets: MomentTargets, table_moments, chain_cov) -> np.ndarray:
    """``Cov(g) + diag(s^2)``: exact within each factor, the chains' estimate across factors.

    Mixing the two estimates can leave a slightly indefinite covariance; negative
    eigenvalues are clipped to zero so the step is a descent direction.
    """
    constraints = targets.constraints
    cov = np.array(chain_cov, np.float64)
    cov = 0.5 * (cov + cov.T)
    by_factor: dict[int, list[int]] = {}
    for k, c in enumerate(constraints):
        by_factor.setdefault(c.factor_id, []).append(k)
    for fid, members in by_factor.items():
        m = np.asarray(table_moments[fid], np.float64)
        g = np.stack([constraints[k].feature.reshape(-1) for k in members])  # [n, cells]
        p = m.reshape(-1)
        mean = g @ p
        cov[np.ix_(members, members)] = (g * p) @ g.T - np.outer(mean, mean)
    values, vectors = np.linalg.eigh(cov)
    cov = (vectors * np.maximum(values, 0.0)) @ vectors.T
    return cov + np.diag([c.s2 for c in constraints])


def solve_newton(hessian: np.ndarray, gradient: np.ndarray) -> np.ndarray:
    """``hessian^-1 gradient``; least squares where rounding left the matrix singular.

    ``s^2`` on the diagonal keeps the exact Hessian positive definite, but two
    contradictory near-exact estimates (``s^2`` at its floor) on the same feature give
    a covariance block whose rounding can make it singular in float64.
    """
    try:
        direction = np.linalg.solve(hessian, gradient)
    except np.linalg.LinAlgError:
        direction = np.linalg.lstsq(hessian, gradient, rcond=None)[0]
    return direction if np.all(np.isfinite(direction)) else np.zeros_like(gradient)


def newton_step(targets: MomentTargets, lambdas, table_moments, chain_cov) -> np.ndarray:
    """Multipliers after one full Newton step on the dual, projected onto the sign bounds.

    Multipliers held at a bound stay out of the solve (their rows are the identity).
    """
    lam = np.asarray(lambdas, np.float64)
    s2 = np.array([c.s2 for c in targets.constraints])
    grad = targets.targets - feature_means(targets, table_moments) - s2 * lam
    free = ~held_at_bound(targets, lam, grad)
    hessian = dual_hessian(targets, table_moments, chain_cov)
    hessian = np.where(free[:, None] & free[None, :], hessian, np.eye(len(lam)))
    direction = solve_newton(hessian, np.where(free, grad, 0.0))
    lower, upper = sign_bounds(targets)
    return np.clip(lam + direction, lower, upper)
