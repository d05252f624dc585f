"""The final estimate: sweeps at fixed multipliers, read by observers inside one scan.

After the search the multipliers are fixed and the chains run on; what the fit
reports is read from those sweeps by *observers*, each a small pytree with

* ``init(x) -> carry`` and ``update(carry, x, sums) -> carry`` on the device: called
  after every evaluation (every ``every`` sweeps) with the chains and the kernel's
  Rao-Blackwellised sums of those sweeps, or after every sweep when the observer's
  ``every_sweep`` is set;
* ``merge(a, b)`` on the host: two batches' carries into one;
* ``finalize(carry, n_evaluations, every)`` on the host: the averages.

:func:`observe` runs a batch of evaluations for any tuple of observers in one
compiled scan; :func:`final_estimate` chooses the observers, adds batches until the
constraint means are precise enough, and assembles a :class:`FinalEstimate`.

Observers: :class:`TableMoments` (Rao-Blackwellised table moments and marginals),
:class:`ScopeCells` (the scope-wise estimator of rare-condition factors, and each
chain's own cell probabilities), :class:`FeatureCovariance` (the chains' feature
covariance, full or localised, for the polish), :class:`ChainMeans` (each chain's
average of every feature: the spread that gives the means' standard error).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .curvature import Pattern
from .distributed import host_get
from .features import LayoutShape, moment_rows_to_tables_host, unpad_tables
from .mcmc.gibbs import GibbsState, build_kernel
from .mcmc.plan import SweepPlan
from .mcmc.sweep import SWEEP_COMPILER_OPTIONS, Accumulators, apply_block_moves, make_rows, zero_accumulators
from .polish import denominators, feature_means
from .scope_moments import HostScopePlan, ScopePlan, cell_log_probabilities, chain_log_mean, flat_tables
from .step import Static, TrainState, chain_curvature, factor_tables
from .targets import MomentObjective, MomentTarget, MomentTargets, chain_values


def _observer(data: tuple[str, ...], meta: tuple[str, ...]):
    """A frozen dataclass registered as a pytree: ``data`` fields are leaves, ``meta`` ones static."""

    def register(cls):
        cls = dataclasses.dataclass(frozen=True)(cls)
        return jax.tree_util.register_dataclass(cls, data_fields=list(data), meta_fields=list(meta))

    return register


def _add(a, b):
    return jax.tree.map(np.add, a, b)


@_observer(data=(), meta=("shape",))
class TableMoments:
    """The kernel's Rao-Blackwellised sums: table moments, marginals, moves, sweeps."""

    shape: LayoutShape
    every_sweep = False

    def init(self, x) -> Accumulators:
        return zero_accumulators(self.shape)

    def update(self, carry, x, sums):
        return jax.tree.map(jnp.add, carry, sums)

    merge = staticmethod(_add)

    def finalize(self, carry, n_evaluations: int, every: int) -> Accumulators:
        return carry


@_observer(data=("plan", "flat"), meta=("per_chain",))
class ScopeCells:
    """The scope estimator: the log of the chains' mean cell probability, and (``per_chain``) each chain's sum."""

    plan: ScopePlan
    flat: jax.Array
    per_chain: bool
    every_sweep = False

    def init(self, x):
        chains = jnp.zeros((self.plan.segment.shape[0], x.shape[1]) if self.per_chain else (), jnp.float32)
        return jnp.full(self.plan.segment.shape, -jnp.inf, jnp.float32), chains

    def update(self, carry, x, sums):
        log_mean, chains = carry
        log_p = cell_log_probabilities(self.plan, self.flat, x)
        log_mean = jnp.logaddexp(log_mean, chain_log_mean(log_p))
        return log_mean, (chains + jnp.exp(log_p)) if self.per_chain else chains

    @staticmethod
    def merge(a, b):
        return np.logaddexp(a[0], b[0]), a[1] + b[1]

    def finalize(self, carry, n_evaluations: int, every: int):
        """Log mean cell probabilities ``[N]``, and each chain's mean ``[N, C]`` (or None)."""
        log_mean, chains = carry
        # the chains' sums stay float32 (``[N, C]``, the largest carry): they are only projected on features
        return (np.asarray(log_mean, np.float64) - math.log(n_evaluations),
                np.asarray(chains) / np.float32(n_evaluations) if self.per_chain else None)


@_observer(data=("objective", "pattern", "active"), meta=("n_states", "mode"))
class FeatureCovariance:
    """The chains' feature covariance, ``[K, K]`` (``dense``) or on a local pattern (``local``).

    ``active`` (a traced flag, so switching it recompiles nothing) says whether the
    evaluations are read at all; the carry counts the evaluations read.
    """

    objective: MomentObjective
    pattern: Pattern | None
    n_states: int
    mode: str
    active: Any = True
    every_sweep = False

    def _curvature(self, x):
        curvature = chain_curvature(self.objective, chain_values(self.objective, x, self.n_states), self.mode,
                                    self.pattern)
        return (curvature.variances, curvature.covariances) if self.mode == "local" else curvature

    def init(self, x):
        zero = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), jax.eval_shape(self._curvature, x))
        return zero, jnp.zeros((), jnp.float32)

    def update(self, carry, x, sums):
        total, count = carry
        return jax.lax.cond(self.active, lambda: (jax.tree.map(jnp.add, total, self._curvature(x)), count + 1.0),
                            lambda: (total, count))

    merge = staticmethod(_add)

    def finalize(self, carry, n_evaluations: int, every: int):
        """The mean covariance over the evaluations read (None: none was)."""
        total, count = carry
        count = float(count)
        return jax.tree.map(lambda c: np.asarray(c, np.float64) / count, total) if count else None


@_observer(data=("objective",), meta=("n_states",))
class ChainMeans:
    """Each chain's sum of every feature value of ``objective`` after every sweep, ``[K', C]``.

    Read after every sweep, not every evaluation: where the chains decorrelate within
    a few sweeps, reading one sweep in four spreads the per-chain averages by up to
    twice as much, and the final estimate ran four times the sweeps to bring that
    bound under its tolerance (1,000-variable synthetic tree: 480 sweeps against 120).
    The ``[K', C]`` values cost a gather per feature and chain, a fraction of a sweep.
    """

    objective: MomentObjective
    n_states: int
    every_sweep = True

    def init(self, x):
        return jnp.zeros((self.objective.target.shape[0], x.shape[1]), jnp.float32)

    def update(self, carry, x, sums):
        return carry + chain_values(self.objective, x, self.n_states)

    merge = staticmethod(_add)

    def finalize(self, carry, n_evaluations: int, every: int) -> np.ndarray:
        return np.asarray(carry, np.float64) / (n_evaluations * every)


def observe(static: Static, plan: SweepPlan, objective, observers: tuple, n_evaluations: int, every: int,
            state: TrainState):
    """``n_evaluations * every`` sweeps at ``state``'s fixed multipliers, read by ``observers``.

    Returns the state after the sweeps and one carry per observer. With no observers
    the sweeps skip the Rao-Blackwellised sums (a burn-in). The number of evaluations
    is a traced loop bound: one compilation serves every batch and burn-in length.
    """
    return _observe(static, plan, objective, observers, jnp.asarray(n_evaluations, jnp.uint32), every, state)


@functools.partial(jax.jit, static_argnums=(0, 5), compiler_options=SWEEP_COMPILER_OPTIONS)
def _observe(static: Static, plan: SweepPlan, objective, observers: tuple, n_evaluations, every: int,
             state: TrainState):
    rows = make_rows(plan, static.shape, factor_tables(static, objective, state.params))
    accumulate = bool(observers)

    def kernel(plan, n):
        return build_kernel(plan, static.shape, n, temperature=static.temperature, accumulate=accumulate,
                            devices=static.devices)

    # stepped one sweep at a time, the chains get their block moves once per evaluation, as with ``several``
    one, several = kernel(plan._replace(blocks=None), 1), kernel(plan, every)
    per_sweep = any(o.every_sweep for o in observers)

    def sweep(carry, counter):
        x, sums, carries = carry
        gibbs, new = one.step(GibbsState(x, state.seed, counter), rows)
        carries = tuple(o.update(c, gibbs.x, new) if o.every_sweep else c for o, c in zip(observers, carries))
        return (gibbs.x, jax.tree.map(jnp.add, sums, new), carries), None

    def evaluation(i, carry):
        x, carries = carry
        counter = state.counter + i * every
        if per_sweep:
            sweeps = counter + jnp.arange(every, dtype=jnp.uint32)
            (x, sums, carries), _ = jax.lax.scan(sweep, (x, zero_accumulators(static.shape), carries), sweeps)
            x = apply_block_moves(plan, rows, x, state.seed, counter + jnp.uint32(every - 1), None,
                                  static.temperature)
        else:
            gibbs, sums = several.step(GibbsState(x, state.seed, counter), rows)
            x = gibbs.x
        carries = tuple(c if o.every_sweep else o.update(c, x, sums) for o, c in zip(observers, carries))
        return x, carries

    carries = tuple(o.init(state.x) for o in observers)
    x, carries = jax.lax.fori_loop(jnp.uint32(0), n_evaluations, evaluation, (state.x, carries))
    return state._replace(x=x, counter=state.counter + n_evaluations * jnp.uint32(every)), carries


def burn_in(static: Static, plan: SweepPlan, objective, state: TrainState, n_sweeps: int, every: int) -> TrainState:
    """At least ``n_sweeps`` sweeps (whole evaluations of ``every``) with nothing read."""
    if n_sweeps <= 0:
        return state
    state, _ = observe(static, plan, objective, (), math.ceil(n_sweeps / every), every, state)
    return state


# -- the final estimate (host side) ---------------------------------------------------


def host_table_moments(model, total: Accumulators) -> list[np.ndarray]:
    """Per-factor table moments from a chunk's accumulated sums."""
    rows = np.asarray(total.moments, np.float64) / max(float(total.sweeps), 1.0)
    return unpad_tables(model.layout, model.graph, moment_rows_to_tables_host(model.layout.shape, rows))


def rare_condition_factors(model, table_moments, threshold: float) -> tuple[int, ...]:
    """Factors carrying a conditional whose condition has probability below ``threshold``.

    Their ratio ``E[w_AC] / E[w_C]`` is where sampled indicators are too sparse; the
    final estimate Rao-Blackwellises their whole scope instead.
    """
    if not isinstance(model.targets, MomentTargets):
        return ()
    rare = {
        c.factor_id
        for c in model.targets.constraints
        if c.denominator is not None and float(np.sum(table_moments[c.factor_id] * c.denominator)) < threshold
    }
    return tuple(sorted(rare))


def spread_targets(targets: MomentTargets) -> MomentTargets:
    """The constraints, then one row per ratio constraint: its denominator ``1_C``.

    The final estimate reads each chain's average of these features: a ratio's
    reported value ``E[num] / E[den]`` carries the error of its denominator too.
    """
    extra = [MomentTarget(c.factor_id, c.denominator, 0.0, 1.0) for c in targets.constraints if c.denominator is not None]
    return MomentTargets(tuple(targets.constraints) + tuple(extra))


def chain_stderr(targets: MomentTargets, chain_means, table_moments) -> float:
    """Largest standard error over constraints of the final means, in report units.

    ``chain_means[k, c]`` is chain ``c``'s own average of feature ``k`` of
    :func:`spread_targets`: one independent draw per chain, however slowly the chain
    mixes, so their spread over chains gives the error of the chains' mean,
    autocorrelation included (an upper bound for the Rao-Blackwellised means). A ratio
    ``r = E[num] / E[den]`` (with ``g = num - t den``) is linearised per chain,
    ``(g - (r - t) den) / E[den]``, with ``r - t = E[g] / E[den]``: where the fitted
    ratio is far from its target ``t``, the denominator's error counts as much as the
    feature's.
    """
    if chain_means.shape[1] < 2:
        return 0.0
    n = len(targets.constraints)
    scale = np.maximum(denominators(targets, table_moments), 1e-12)
    linear = np.array(chain_means[:n], np.float64)
    ratios = [k for k, c in enumerate(targets.constraints) if c.denominator is not None]
    if ratios:
        offset = feature_means(targets, table_moments)[ratios] / scale[ratios]
        linear[ratios] -= offset[:, None] * chain_means[n : n + len(ratios)]
    stderr = linear.std(axis=1, ddof=1) / math.sqrt(chain_means.shape[1])
    return float(np.max(stderr / scale, initial=0.0))


def scope_chain_means(targets: MomentTargets, means, chain_cells, scope_plan: HostScopePlan | None) -> np.ndarray:
    """``means`` (``[K', C]``) with the scope-measured factors' rows taken from each chain's cell probabilities.

    There the scope estimator averages each chain's cell probabilities, so that is
    the per-chain quantity whose spread gives its error.
    """
    if scope_plan is None or chain_cells is None:
        return means
    means = np.array(means, np.float64)
    cells = scope_plan.cells(chain_cells)
    for k, c in enumerate(spread_targets(targets).constraints):
        if c.factor_id in cells:
            means[k] = c.feature.reshape(-1) @ cells[c.factor_id]
    return means


class FinalEstimate(NamedTuple):
    """Moments and marginals averaged over the final sweeps at fixed multipliers."""

    state: TrainState
    table_moments: list  # per graph factor, unpadded; scope-wise where a factor's condition is rare
    marginal_sum: np.ndarray  # [V + 1, S] mean state indicators
    sweeps: float  # sweeps averaged (burn-in excluded)
    changed: float
    covariance: Any  # [K, K] chains' feature covariance, (variances [K], pattern covariances [P]), or None
    stderr: float  # largest standard error of a constraint mean, report units (nan: not measured)
    total_sweeps: int  # sweeps run, burn-in included
    chain_means: np.ndarray | None = None  # [K', C] each chain's mean of the spread features (see ChainMeans)


def final_estimate(model, config, static: Static, state: TrainState, scope_plan: HostScopePlan | None,
                   covariance: str | None = None, measure_covariance: bool = True) -> FinalEstimate:
    """Burn in, then average the moments and marginals over ``final_sweeps`` sweeps or more.

    The ratio factors' tables (``scope_plan``) come from the scope-wise estimator; with
    ``covariance`` (``dense`` or ``local``) and ``measure_covariance`` the chains'
    feature covariance is averaged over the same evaluations. An estimate that feeds no
    polish step has the observer but leaves it off (a dense one costs ``K^2 C`` per
    evaluation, about a third of a sweep at 2,000 constraints and 2,048 chains), so
    both share one compiled program. Averaging it over the first batch only made the
    polish step miss: 1,000-variable trees, seeds 1 and 2, max marginal error 0.0060
    and 0.0150 against 0.0034 and 0.0071. Where the chains mix slowly, one batch of
    ``final_sweeps`` leaves the means too noisy: batches are added while the standard
    error of a constraint mean (measured from the spread of the per-chain averages)
    exceeds ``final_tolerance``, up to ``max_final_sweeps``.
    """
    plan, objective, spread, pattern = model.program
    every = max(int(config.scope_every), 1)
    n_states = static.shape.n_states
    state = burn_in(static, plan, objective, state, int(config.burn_in_sweeps), every)
    total_sweeps = math.ceil(config.burn_in_sweeps / every) * every if config.burn_in_sweeps else 0

    flat = flat_tables(factor_tables(static, objective, state.params))
    observers = {"moments": TableMoments(static.shape)}
    if scope_plan is not None:
        observers["scope"] = ScopeCells(scope_plan.device(), flat, spread is not None)
    if covariance is not None:
        observers["covariance"] = FeatureCovariance(objective, pattern if covariance == "local" else None, n_states,
                                                    covariance, jnp.asarray(measure_covariance))
    if spread is not None:
        observers["chains"] = ChainMeans(spread, n_states)
    names, chosen = tuple(observers), tuple(observers.values())

    n_batch = math.ceil(config.final_sweeps / every)
    carries, n_evaluations = None, 0
    while True:
        state, batch = observe(static, plan, objective, chosen, n_batch, every, state)
        batch = host_get(batch)  # per-chain sums may be split across processes
        carries = batch if carries is None else tuple(o.merge(a, b) for o, a, b in zip(chosen, carries, batch))
        n_evaluations += n_batch
        total_sweeps += n_batch * every
        results = {name: o.finalize(c, n_evaluations, every) for name, o, c in zip(names, chosen, carries)}
        acc = results["moments"]
        sweeps = float(acc.sweeps)
        moments = np.asarray(acc.moments, np.float64) / sweeps
        table_moments = unpad_tables(model.layout, model.graph, moment_rows_to_tables_host(static.shape, moments))
        log_cells, chain_cells = results.get("scope", (None, None))
        if log_cells is not None:
            for fid, table in scope_plan.tables(log_cells).items():
                table_moments[fid] = table
        means = None
        if "chains" in results:
            means = scope_chain_means(model.targets, results["chains"], chain_cells, scope_plan)
            stderr = chain_stderr(model.targets, means, table_moments)
        else:
            stderr = float("nan")
        if not stderr > config.final_tolerance or (n_evaluations + n_batch) * every > config.max_final_sweeps:
            break
    marginals = np.asarray(acc.marginals, np.float64) / sweeps
    cov = results.get("covariance")
    if cov is not None:
        k = len(model.targets.constraints)
        cov = cov[:k, :k] if covariance == "dense" else (cov[0][:k], cov[1][: pattern_size(model)])
    return FinalEstimate(state, table_moments, marginals, sweeps, float(acc.changed), cov, stderr, total_sweeps, means)


def pattern_size(model) -> int:
    return 0 if model.pattern is None else model.pattern.n_pairs
