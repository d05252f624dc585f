"""The dual step as optax transformations.

The ascent direction of the dual ``log Z - lambda.c + 1/2 s^2 lambda^2`` is
``c - E[g] - s^2 lambda`` (:func:`.targets.ascent`); a transformation turns it into the
step added to the multipliers:

* :func:`newton`: the damped Newton step, preconditioned by the chains' feature
  covariance (or their variances alone), with an importance-sampled line search. It
  reads the chains' per-chain feature values, passed as the extra argument ``chains``
  (:class:`ChainStatistics`), so it is an :class:`optax.GradientTransformationExtraArgs`;
* ``adam``: :func:`optax.scale_by_adam`, then :func:`optax.clip`;
* ``sgd``: the direction itself, clipped.

The step schedule (a learning rate per iteration, from the host) multiplies the
step outside, and :func:`polyak_update` keeps the running average of the iterates.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from calibrated_response_plugins import dual

from .config import OPTIMIZERS
from .curvature import LocalCovariance, local_solve
from .targets import MomentObjective, project

LINE_SEARCH_STEPS = 2.0 ** -np.arange(8)  # 1, 1/2, ..., 1/128
MIN_EFFECTIVE_FRACTION = 0.3


class ChainStatistics(NamedTuple):
    """What the chains tell the Newton step (device pytree)."""

    values: jax.Array  # f32[K, C]: every chain's feature values
    curvature: object  # f32[K, K] feature covariance, a LocalCovariance, or f32[K] variances


def held_at_sign_bound(objective: MomentObjective, params, ascent):
    """Multipliers at a sign bound whose ascent direction points past it (:func:`dual.held_at_bound`,
    whose gradient is the negative of the ascent direction)."""
    return dual.held_at_bound(params, -ascent, objective.lower, objective.upper)


def newton_direction(objective: MomentObjective, params, grad, curvature, max_change: float | None = None):
    """Solve ``(Cov(g) + diag(s^2)) d = grad`` over the free multipliers, scaled to ``max_change``.

    ``curvature`` a vector of variances: the diagonal system; a
    :class:`~.curvature.LocalCovariance`: the localised system, by conjugate gradients. The direction is scaled
    down as a whole so that no multiplier moves by more than ``max_change`` (a trust
    region: scaling keeps it a descent direction, where clipping entries would not).
    """
    free = ~held_at_sign_bound(objective, params, grad)
    if isinstance(curvature, LocalCovariance):
        direction = local_solve(curvature, objective.s2, grad, free)
    elif curvature.ndim == 1:
        direction = jnp.where(free, grad / (curvature + objective.s2 + 1e-6), 0.0)
    else:
        hessian = curvature + jnp.diag(objective.s2 + 1e-6)
        hessian = jnp.where(free[:, None] & free[None, :], hessian, jnp.eye(hessian.shape[0]))
        direction = jnp.linalg.solve(hessian, jnp.where(free, grad, 0.0))
    if max_change is not None:
        direction = direction * jnp.minimum(1.0, max_change / jnp.maximum(jnp.max(jnp.abs(direction)), 1e-30))
    return direction


def line_search(objective: MomentObjective, params, direction, values):
    """Step length along ``direction`` that minimises the reweighted dual change.

    The change ``log E[exp(delta.g)] - delta.c + 1/2 s^2 (|lambda + delta|^2 - |lambda|^2)``
    is estimated by reweighting the current chains, among lengths whose weights keep at
    least ``MIN_EFFECTIVE_FRACTION`` of the chains effective (so the estimate, and the
    chains after the step, stay close to equilibrium).
    """

    def change(alpha):
        new = project(objective, params + alpha * direction)
        delta = new - params
        log_w = delta @ values  # [C]
        top = jnp.max(log_w)
        w = jnp.exp(log_w - top)
        log_mean = jnp.log(jnp.mean(w)) + top
        effective = jnp.sum(w) ** 2 / (jnp.sum(w**2) * w.shape[0])
        dual = log_mean - delta @ objective.target + 0.5 * jnp.sum(objective.s2 * (new**2 - params**2))
        return dual, effective

    alphas = jnp.asarray(LINE_SEARCH_STEPS, jnp.float32)
    dual, effective = jax.vmap(change)(alphas)
    dual = jnp.where(effective >= MIN_EFFECTIVE_FRACTION, dual, jnp.inf)
    return jnp.where(jnp.isfinite(jnp.min(dual)), alphas[jnp.argmin(dual)], alphas[-1])


def newton(objective: MomentObjective, max_change: float | None = None) -> optax.GradientTransformationExtraArgs:
    """The damped Newton step with its line search; ``update`` needs ``chains=ChainStatistics``."""

    def init(params):
        del params
        return optax.EmptyState()

    def update(updates, state, params=None, *, chains: ChainStatistics, **extra_args):
        del extra_args
        direction = newton_direction(objective, params, updates, chains.curvature, max_change)
        return line_search(objective, params, direction, chains.values) * direction, state

    return optax.GradientTransformationExtraArgs(init, update)


class DualStep(NamedTuple):
    """A dual step as the engine runs it: the transformation, and what it asks of the engine."""

    transformation: optax.GradientTransformationExtraArgs
    uses_chains: bool  # ``update`` takes ``chains=ChainStatistics`` (values and curvature)
    constant_averaging: bool  # the averaging phase keeps the step (each iterate an estimate of the optimum)


def dual_step(name: str, objective, grad_clip: float | None) -> DualStep:
    """The step ``name`` (one of :data:`OPTIMIZERS`) asks for; the one place a name is read.

    The Newton step reads the chains and keeps a constant step while averaging (each
    iterate is then an independent noisy estimate of the optimum, which a constant
    step averages best); first-order steps decay as ``1 / sqrt(t)`` there.
    """
    newton_step = name == "newton"
    return DualStep(dual_transformation(name, objective, grad_clip), newton_step, newton_step)


def dual_transformation(name: str, objective, grad_clip: float | None) -> optax.GradientTransformationExtraArgs:
    """The transformation of the ascent direction that ``name`` (one of :data:`OPTIMIZERS`) asks for."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    if name == "newton":
        if not isinstance(objective, MomentObjective):
            raise ValueError("the newton step needs moment targets (one multiplier per constraint)")
        return newton(objective, grad_clip)
    first_order = optax.scale_by_adam() if name == "adam" else optax.identity()
    return optax.chain(first_order, optax.clip(grad_clip) if grad_clip is not None else optax.identity())


class PolyakState(NamedTuple):
    """Running mean of the iterates since the averaging phase began."""

    average: object  # like params
    count: jax.Array  # f32[]: iterates averaged


def polyak_init(params) -> PolyakState:
    return PolyakState(jax.tree.map(jnp.zeros_like, params), jnp.zeros((), jnp.float32))


def polyak_update(state: PolyakState, params, averaging) -> PolyakState:
    """Add ``params`` to the mean when ``averaging`` is 1 (0: keep the mean)."""
    count = state.count + averaging
    weight = averaging / jnp.maximum(count, 1.0)
    return PolyakState(jax.tree.map(lambda a, p: a + weight * (p - a), state.average, params), count)
