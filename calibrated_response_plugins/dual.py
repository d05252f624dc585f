"""The dual every backend minimises, its sign bounds and the "held at a bound" test.

Every backend fits the same softened dual (see ``docs/semantics.md``)::

    f(lambda) = log Z(lambda) - sum_k lambda_k c_k + 1/2 sum_k s_k^2 lambda_k^2
    subject to lambda_k >= 0 for "ge", lambda_k <= 0 for "le"

One sign convention throughout: ``gradient`` is the gradient of ``f``,

    gradient_k = E[g_k] - c_k + s_k^2 lambda_k,

so a descent step moves along ``-gradient``. (The stochastic update
``lambda += eta * (c - E[g] - s^2 lambda)`` of a sampler is that descent step:
pass ``-ascent`` where a function here asks for ``gradient``.)

The functions use array operators only, or take the array module as ``xp``,
so they serve numpy on the host and ``jax.numpy`` on a device alike; the core
itself never imports JAX.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: ``(lower, upper)`` bound on a multiplier for each relation.
SIGN_BOUNDS = {"eq": (-np.inf, np.inf), "ge": (0.0, np.inf), "le": (-np.inf, 0.0)}


def sign_bounds(relations: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper multiplier bounds: ``ge`` -> [0, inf), ``le`` -> (-inf, 0], ``eq`` free.

    Why these signs: at the optimum ``E[g_k] - c_k = -s_k^2 lambda_k``, so a
    ``ge`` constraint (``E[g_k] >= c_k``) may only push up, ``lambda_k >= 0``.
    """
    unknown = sorted(set(relations) - set(SIGN_BOUNDS))
    if unknown:
        raise ValueError(f"unknown relation(s) {unknown}; expected one of {sorted(SIGN_BOUNDS)}")
    lower = np.array([SIGN_BOUNDS[r][0] for r in relations], dtype=np.float64)
    upper = np.array([SIGN_BOUNDS[r][1] for r in relations], dtype=np.float64)
    return lower, upper


def scipy_bounds(relations: Sequence[str]) -> list[tuple[float | None, float | None]]:
    """The sign bounds as scipy's ``minimize(bounds=...)`` wants them (``None``: unbounded)."""
    lower, upper = sign_bounds(relations)
    return [(None if np.isinf(lo) else float(lo), None if np.isinf(hi) else float(hi))
            for lo, hi in zip(lower, upper)]


def dual_gradient(feature_means: Any, targets: Any, s2: Any, lambdas: Any) -> Any:
    """``E[g] - c + s^2 lambda``: the gradient of the dual (zero at an unconstrained optimum)."""
    return feature_means - targets + s2 * lambdas


def held_at_bound(lambdas: Any, gradient: Any, lower: Any, upper: Any) -> Any:
    """Mask of multipliers at a sign bound that a descent step would push further out.

    Such a multiplier is rightly at its bound (its inequality is slack), so its
    gradient does not count toward convergence and a Newton step leaves it alone.
    """
    return ((lambdas <= lower) & (gradient > 0)) | ((lambdas >= upper) & (gradient < 0))


def free_gradient(lambdas: Any, gradient: Any, lower: Any, upper: Any, xp: Any = np) -> Any:
    """The gradient with the entries :func:`held_at_bound` marks set to zero."""
    return xp.where(held_at_bound(lambdas, gradient, lower, upper), 0.0, gradient)


def projected_gradient(lambdas: Any, gradient: Any, lower: Any, upper: Any, xp: Any = np) -> Any:
    """``lambda - clip(lambda - gradient, lower, upper)``: the gradient cut where a unit step would cross a bound.

    Zero exactly at a bound-constrained optimum (the usual L-BFGS-B measure).
    Written per case so that an entry away from its bounds is the gradient
    itself, exact even when ``lambda`` is so large that ``lambda - gradient``
    rounds to ``lambda``.
    """
    stepped = lambdas - gradient
    return xp.where(stepped < lower, lambdas - lower,
                    xp.where(stepped > upper, lambdas - upper, gradient))


def clip_to_bounds(lambdas: Any, lower: Any, upper: Any, xp: Any = np) -> Any:
    """Project multipliers onto their sign bounds."""
    return xp.clip(lambdas, lower, upper)


def newton_direction(hessian: np.ndarray, gradient: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Descent direction ``d`` solving ``H d = -gradient`` on the free multipliers; zero on the held ones.

    ``hessian`` is the dual's ``Cov(g) + diag(s^2)`` (or an estimate of it). A
    singular reduced system (possible only with an estimated covariance and
    tiny ``s^2``) falls back to least squares.
    """
    gradient = np.asarray(gradient, dtype=np.float64)
    free = np.asarray(free, dtype=bool)
    direction = np.zeros_like(gradient)
    reduced = np.asarray(hessian, dtype=np.float64)[np.ix_(free, free)]
    try:
        direction[free] = np.linalg.solve(reduced, -gradient[free])
    except np.linalg.LinAlgError:
        direction[free] = np.linalg.lstsq(reduced, -gradient[free], rcond=None)[0]
    # two contradictory near-exact estimates can leave rounding that no solve survives
    return direction if np.all(np.isfinite(direction)) else np.zeros_like(gradient)
