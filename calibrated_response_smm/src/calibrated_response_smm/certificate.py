"""A convergence certificate measured on chains that did not choose the answer.

The search's own convergence test reads the moments of the chains whose noise also
chose the step, and the final estimate reads chains that came from the last iterate:
where the chains mix slowly (large multipliers make peaked conditionals that
single-site Gibbs crosses rarely) both can agree with a wrong answer. The certificate
runs at the final multipliers, after the fit, on fresh sweeps of ``GROUPS`` chain
groups: half of them continue the final chains, half start from uniform random states
(the most dispersed start there is), all after a burn-in longer than the fit's. It
passes when, for every constraint, in report units (a conditional's residual divided
by ``P(C)``):

1. the dual gradient ``c - E[g] - s^2 lambda`` over all certificate chains is within
   the fit's ``tolerance`` (at most ``GRADIENT_TOLERANCE``) plus ``Z_GRADIENT`` of its
   own standard errors (measured from the spread of the chains' own averages: one
   independent draw per chain, so slow mixing within a chain counts). The search
   claims that tolerance, so the certificate checks that claim; a fixed 0.01 let a
   1,000-variable tree fit whose largest residual was 0.013, seven standard errors
   from zero, pass with marginals 0.012 from the exact ones; and
2. every group's mean agrees with the others' within ``AGREEMENT_TOLERANCE`` plus
   ``Z_AGREEMENT`` standard errors of the difference: chains started apart that have
   not forgotten their start disagree (the chain-group analogue of split R-hat, which
   is reported too).

A failed certificate names the constraints in doubt and by how much. Where the fit's
last polish step re-estimates the moments at the final multipliers, that estimate runs
on the certificate's chain groups (:func:`restart_for_certificate`) and the test reads
its sweeps (:func:`certify_estimate`) rather than running sweeps of its own.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from .distributed import host_get
from .mcmc.stream import seed_words
from .mcmc.sweep import random_states
from .polish import held_at_bound

GROUPS = 4
GRADIENT_TOLERANCE = 0.01  # report units: the loosest gradient tolerance (a fit's own tolerance when smaller)
AGREEMENT_TOLERANCE = 0.01
Z_GRADIENT = 4.0  # K constraints tested at once: 4 standard errors keep false alarms rare (~6e-5 each)
Z_AGREEMENT = 4.0
BURN_IN_FACTOR = 2  # fresh chains get twice the fit's burn-in
SEED_SALT = 0x5EED_CE27  # the fresh chains' starting states come from a stream the fit never used


class Doubt(NamedTuple):
    """One constraint the certificate could not vouch for (report units)."""

    index: int  # constraint position
    gradient: float  # dual gradient over all certificate chains
    stderr: float  # its standard error
    group_spread: float  # largest group mean minus smallest


class Certificate(NamedTuple):
    passed: bool
    max_gradient: float  # largest |gradient| (report units)
    max_gradient_z: float  # largest |gradient| / stderr
    max_group_z: float  # largest group disagreement in standard errors
    max_rhat: float  # largest chain-group R-hat over constraints
    doubts: tuple  # Doubt per failing constraint, worst first
    sweeps: int
    tolerance: float = GRADIENT_TOLERANCE  # the gradient tolerance applied (report units)

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "max_gradient": self.max_gradient,
            "max_gradient_z": self.max_gradient_z,
            "max_group_z": self.max_group_z,
            "max_rhat": self.max_rhat,
            "doubts": [d._asdict() for d in self.doubts],
            "sweeps": self.sweeps,
            "tolerance": self.tolerance,
        }


def group_labels(n_chains: int, groups: int = GROUPS) -> np.ndarray:
    """Group of each chain column: contiguous blocks (the first half continues the fit's chains)."""
    return np.minimum(np.arange(n_chains) * groups // max(n_chains, 1), groups - 1)


def _linearised(chain_means: np.ndarray, targets, lambdas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-chain contributions to the report-unit gradient ``[K, C]``, and its value ``[K]``.

    ``chain_means`` holds the constraints' features, then one denominator row per ratio
    (as :func:`.estimate.spread_targets` lays them out). A ratio's report-unit gradient
    ``(c - E[g] - s^2 lambda) / E[den]`` is linearised per chain, so the chains' spread
    gives its standard error with the denominator's error included.
    """
    constraints = targets.constraints
    n = len(constraints)
    g = np.asarray(chain_means[:n], np.float64)
    target = np.array([c.target for c in constraints])
    s2 = np.array([c.s2 for c in constraints])
    raw = target - g.mean(axis=1) - s2 * lambdas  # [K]
    den = np.ones_like(g)
    ratios = [k for k, c in enumerate(constraints) if c.denominator is not None]
    if ratios:
        den[ratios] = chain_means[n : n + len(ratios)]
    den_mean = np.maximum(den.mean(axis=1), 1e-12)
    gradient = raw / den_mean
    # d(grad)/d(g_c) = -1/D; d(grad)/d(den_c) = -grad/D: one linear term per chain.
    contributions = (-(g - g.mean(axis=1, keepdims=True)) - gradient[:, None] * (den - den.mean(axis=1, keepdims=True)))
    return contributions / den_mean[:, None] + gradient[:, None], gradient


def assess(chain_means: np.ndarray, targets, lambdas, labels: np.ndarray, sweeps: int = 0,
           tolerance: float = GRADIENT_TOLERANCE) -> Certificate:
    """The certificate from each chain's feature averages (host side, pure); ``tolerance``: the gradient's."""
    lambdas = np.asarray(lambdas, np.float64)
    contributions, gradient = _linearised(chain_means, targets, lambdas)
    n_chains = contributions.shape[1]
    held = held_at_bound(targets, lambdas, gradient)  # at a sign bound, pushed outward: nothing to meet
    stderr = contributions.std(axis=1, ddof=1) / math.sqrt(n_chains)
    gradient = np.where(held, 0.0, gradient)
    groups = np.unique(labels)
    means = np.stack([contributions[:, labels == g].mean(axis=1) for g in groups], axis=1)  # [K, G]
    variances = np.stack([contributions[:, labels == g].var(axis=1, ddof=1) for g in groups], axis=1)
    sizes = np.array([np.sum(labels == g) for g in groups], np.float64)
    # Each group against the mean of the others, with the standard error of that difference.
    others = (means.sum(axis=1, keepdims=True) - means) / (len(groups) - 1)
    se2 = variances / sizes
    spread_se = np.sqrt(se2 + (se2.sum(axis=1, keepdims=True) - se2) / (len(groups) - 1) ** 2)
    gap = np.abs(means - others)
    gap = np.where(held[:, None], 0.0, gap)
    grad_fail = np.abs(gradient) > tolerance + Z_GRADIENT * stderr
    group_fail = np.any(gap > AGREEMENT_TOLERANCE + Z_AGREEMENT * spread_se, axis=1)
    within = variances.mean(axis=1)
    between = means.var(axis=1, ddof=1) * sizes.mean()
    n = sizes.mean()
    rhat = np.sqrt(((n - 1) / n * within + between / n) / np.maximum(within, 1e-300))
    failing = np.nonzero(grad_fail | group_fail)[0]
    spread = means.max(axis=1) - means.min(axis=1)
    order = sorted(failing.tolist(), key=lambda k: -max(abs(gradient[k]), spread[k]))
    doubts = tuple(Doubt(int(k), float(gradient[k]), float(stderr[k]), float(spread[k])) for k in order)
    safe = np.where(stderr > 1e-12, stderr, np.inf)  # a constant feature: its gradient is rounding, not a z-score
    return Certificate(
        passed=not doubts,
        max_gradient=float(np.max(np.abs(gradient), initial=0.0)),
        max_gradient_z=float(np.max(np.abs(gradient) / safe, initial=0.0)),
        max_group_z=float(np.max(gap / np.where(spread_se > 0, spread_se, np.inf), initial=0.0)),
        max_rhat=float(np.max(np.where(held, 1.0, rhat), initial=1.0)),
        doubts=doubts,
        sweeps=int(sweeps),
        tolerance=float(tolerance),
    )


@jax.jit
def _restart_second_half(plan, x, seed):
    """``x`` with its second half of chains drawn afresh, uniformly (placed as ``x`` is, on any device split)."""
    fresh = random_states(plan, seed, x.shape[1])
    keep = jnp.arange(x.shape[1]) < x.shape[1] // 2
    return jnp.where(keep[None, :], x, fresh)


def _fresh_chains(static, plan, state, seed: int):
    """The final chains with their second half replaced by uniform random states."""
    del static
    return state._replace(x=_restart_second_half(plan, state.x, jnp.asarray(seed_words(seed ^ SEED_SALT))))


def restart_for_certificate(static, plan, config, state):
    """``state`` with its second half of chains restarted and ``config`` with the certificate's longer
    burn-in: a final estimate run from them reads the certificate's chain groups (:func:`certify_estimate`)."""
    burn_in = BURN_IN_FACTOR * max(int(config.burn_in_sweeps), 1)
    return _fresh_chains(static, plan, state, int(config.seed)), attrs.evolve(config, burn_in_sweeps=burn_in)


def certify_estimate(model, config, estimate) -> Certificate | None:
    """The certificate read from a final estimate run on :func:`restart_for_certificate`'s chains.

    The same test as :func:`certify`, on every sweep the estimate averaged, so the
    estimate that gives the answer's moments certifies its multipliers too: they were
    chosen before those sweeps ran (by the polish step, from the previous estimate).
    """
    from .estimate import spread_targets

    if estimate.chain_means is None or estimate.chain_means.shape[1] < 2 * GROUPS:
        return None
    chain_means = estimate.chain_means[: len(spread_targets(model.targets).constraints)]
    lambdas = np.asarray(host_get(estimate.state.params), np.float64)[: len(model.targets.constraints)]
    return assess(chain_means, model.targets, lambdas, group_labels(chain_means.shape[1]), estimate.total_sweeps,
                  gradient_tolerance(config))


def certify(model, config, static, plan, objective, state) -> Certificate | None:
    """Fresh sweeps at ``state``'s multipliers from continued and restarted chain groups; None
    for table targets (one multiplier per cell: no constraint report to certify)."""
    from .estimate import ChainMeans, burn_in, observe, spread_targets
    from .targets import MomentObjective

    if not isinstance(objective, MomentObjective) or state.x.shape[1] < 2 * GROUPS:
        return None
    every = max(int(config.scope_every), 1)
    state, config = restart_for_certificate(static, plan, config, state)
    n_burn = config.burn_in_sweeps
    state = burn_in(static, plan, objective, state, n_burn, every)
    reader = ChainMeans(model.program.spread, static.shape.n_states)
    n_batch = math.ceil(config.final_sweeps / every)
    _, (values,) = observe(static, plan, objective, (reader,), n_batch, every, state)
    n_features = len(spread_targets(model.targets).constraints)
    chain_means = reader.finalize(host_get(values), n_batch, every)[:n_features]
    lambdas = np.asarray(host_get(state.params), np.float64)[: len(model.targets.constraints)]
    return assess(chain_means, model.targets, lambdas, group_labels(chain_means.shape[1]),
                  math.ceil(n_burn / every) * every + n_batch * every, gradient_tolerance(config))


def gradient_tolerance(config) -> float:
    """The certificate's gradient tolerance: the fit's own ``tolerance``, at most ``GRADIENT_TOLERANCE``."""
    return min(float(config.tolerance), GRADIENT_TOLERANCE)


def doubt_warning(certificate: Certificate, ids, limit: int = 5) -> str:
    """The warning of a failed certificate, naming the constraints in doubt (``ids`` by position)."""
    parts = [
        f"{ids[d.index]} (dual gradient {d.gradient:+.3g} +/- {d.stderr:.2g}, chain groups differ by {d.group_spread:.3g})"
        for d in certificate.doubts[:limit]
    ]
    more = f" and {len(certificate.doubts) - limit} more" if len(certificate.doubts) > limit else ""
    return (
        "smm: not converged: fresh chains at the final multipliers do not confirm the optimum "
        f"(report units; tolerance {certificate.tolerance:g} plus {Z_GRADIENT:g} standard errors, "
        f"chain-group R-hat up to {certificate.max_rhat:.3g}); in doubt: " + "; ".join(parts) + more
        + ". The answer may be off by about that much; raise num_chains, burn_in_sweeps or num_iterations, "
        "or use backend=\"maxent\" if the joint is small enough"
    )
