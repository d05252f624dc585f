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
from calibrated_response_plugins import dual

from .curvature import HostPattern, host_matrix, host_solve
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
    return dual.sign_bounds([c.relation for c in targets.constraints])


def held_at_bound(targets: MomentTargets, lambdas, grad) -> np.ndarray:
    """Multipliers at a sign bound whose ascent direction ``grad`` pushes them further out.

    ``grad`` here is the ascent ``c - E[g] - s^2 lambda``, the negative of the
    dual's gradient in :mod:`calibrated_response_plugins.dual`.
    """
    lower, upper = sign_bounds(targets)
    return dual.held_at_bound(np.asarray(lambdas, np.float64), -np.asarray(grad, np.float64), lower, upper)


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
    for members, block in factor_covariances(targets, table_moments).values():
        cov[np.ix_(members, members)] = block
    values, vectors = np.linalg.eigh(cov)
    cov = (vectors * np.maximum(values, 0.0)) @ vectors.T
    return cov + np.diag([c.s2 for c in constraints])


def factor_covariances(targets: MomentTargets, table_moments) -> dict[int, tuple[list[int], np.ndarray]]:
    """Per factor, its constraints and their exact feature covariance from the factor's table moment."""
    constraints = targets.constraints
    by_factor: dict[int, list[int]] = {}
    for k, c in enumerate(constraints):
        by_factor.setdefault(c.factor_id, []).append(k)
    out = {}
    for fid, members in by_factor.items():
        p = np.asarray(table_moments[fid], np.float64).reshape(-1)
        g = np.stack([constraints[k].feature.reshape(-1) for k in members])  # [n, cells]
        mean = g @ p
        out[fid] = (members, (g * p) @ g.T - np.outer(mean, mean))
    return out


def local_hessian(targets: MomentTargets, table_moments, pattern: HostPattern, variances, covariances):
    """The local ``Cov(g) + diag(s^2)`` (sparse, :mod:`.curvature`): exact within each factor, the
    chains' across factors sharing a variable."""
    variances = np.array(variances, np.float64)
    covariances = np.array(covariances, np.float64)
    factor_of = np.array([c.factor_id for c in targets.constraints])
    position = {}
    for fid, (members, cov) in factor_covariances(targets, table_moments).items():
        for i, k in enumerate(members):
            variances[k] = cov[i, i]
            position[k] = (fid, i, cov)
    same = np.flatnonzero(factor_of[pattern.first] == factor_of[pattern.second])
    for p in same:
        fid, i, cov = position[int(pattern.first[p])]
        covariances[p] = cov[i, position[int(pattern.second[p])][1]]
    s2 = np.array([c.s2 for c in targets.constraints])
    return host_matrix(pattern, np.maximum(variances, 0.0), covariances, s2)


def newton_step(targets: MomentTargets, lambdas, table_moments, chain_cov, pattern: HostPattern | None = None) -> np.ndarray:
    """Multipliers after one full Newton step on the dual, projected onto the sign bounds.

    ``chain_cov`` is the chains' feature covariance ``[K, K]``, or with a ``pattern``
    its localised form ``(variances [K], pattern covariances [P])`` (solved by
    conjugate gradients, see :mod:`.curvature`). Multipliers held at a bound stay out
    of the solve and do not move.
    """
    lam = np.asarray(lambdas, np.float64)
    s2 = np.array([c.s2 for c in targets.constraints])
    grad = targets.targets - feature_means(targets, table_moments) - s2 * lam
    free = ~held_at_bound(targets, lam, grad)
    if pattern is not None:
        direction = host_solve(local_hessian(targets, table_moments, pattern, *chain_cov), grad, free)
    else:
        direction = dual.newton_direction(dual_hessian(targets, table_moments, chain_cov), -grad, free)
    lower, upper = sign_bounds(targets)
    return dual.clip_to_bounds(lam + direction, lower, upper)
