"""Stochastic moment matching: the fit from a laid-out model to its answer.

:func:`fit_model` runs the phases, each in its own module:

1. the schedule (:mod:`.schedule`): iterations of sweeps and a dual step
   (:mod:`.step`, with the steps of :mod:`.dual_step`) until converged, then a
   Polyak-averaging phase whose average is the answer's multipliers;
2. the final estimate (:mod:`.estimate`): moments and marginals averaged over
   ``final_sweeps`` or more sweeps at those multipliers, read by observers;
3. a Newton polish from those precise moments where the search's noise left the
   multipliers measurably off the optimum (:mod:`.polish`);
4. the certificate (:mod:`.certificate`): fresh chain groups at the final multipliers
   confirm the optimum, or ``converged`` is False. The last polish step's estimate runs
   on those groups, so the certificate is read from it where the polish ran to its end.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from .certificate import certify, certify_estimate, restart_for_certificate
from .config import SMMConfig
from .curvature import HostPattern, Pattern, sharing_pattern
from .dual_step import dual_step
from .estimate import FinalEstimate, final_estimate, host_table_moments, rare_condition_factors, spread_targets
from .features import TableLayout, build_layout, unpad_tables
from .graph import FactorGraph
from .mcmc.plan import HostPlan, SweepPlan, build_plan
from .mcmc.sharding import chain_devices
from .mcmc.stream import seed_words
from .polish import dual_gradient, newton_step, scaled_gradient
from .schedule import run_schedule
from .scope_moments import HostScopePlan, build_scope_plan
from .step import Static, TrainState, curvature_mode, init_state
from .targets import MomentObjective, MomentTargets, TableTargets, moment_objective, table_objective


# -- host side ---------------------------------------------------------------------


class Program(NamedTuple):
    """The device arrays one fit runs on (built once per model)."""

    plan: SweepPlan
    objective: Any  # MomentObjective or TableObjective
    spread: MomentObjective | None  # the constraints and ratio denominators (see .estimate.spread_targets)
    pattern: Pattern | None  # the local curvature's constraint pairs (moment targets only)


@attrs.frozen(eq=False)
class SMMModel:
    """A graph with its targets, laid out and coloured for the sampler (built once)."""

    graph: FactorGraph
    targets: MomentTargets | TableTargets
    layout: TableLayout
    plan: HostPlan
    l2_regularization: float = 1e-3
    devices: int = 1  # chains split across this many local devices (the plan's blocks fit one share)
    pattern: HostPattern | None = None  # constraint pairs sharing a variable (the local curvature)

    @classmethod
    def build(
        cls, graph: FactorGraph, targets, num_chains: int, l2_regularization: float = 1e-3, pad: bool = True,
        devices: int | None = None, block_moves: bool = True,
    ) -> SMMModel:
        """Lay out and colour ``graph``; ``devices`` as :func:`.mcmc.sharding.chain_devices` resolves it;
        ``block_moves`` as :func:`.mcmc.plan.build_plan` takes it."""
        n_multipliers = (
            len(targets.constraints) if isinstance(targets, MomentTargets) else sum(f.parameters.size for f in graph.factors)
        )
        devices = chain_devices(devices, num_chains, graph.n_vars, n_multipliers)
        layout = build_layout(graph, pad=pad)
        plan = build_plan(graph, layout, num_chains // devices, pad=pad, block_moves=block_moves)
        pattern = None
        if isinstance(targets, MomentTargets) and curvature_mode(len(targets.constraints), num_chains) == "local":
            pattern = sharing_pattern([graph.factors[c.factor_id].var_ids for c in targets.constraints])
        return cls(graph, targets, layout, plan, float(l2_regularization), devices, pattern)

    @functools.cached_property
    def program(self) -> Program:
        """Plan, objective, spread objective and curvature pattern on the device, built on first use and kept."""
        pattern = None
        if isinstance(self.targets, MomentTargets):
            objective = moment_objective(self.layout, self.targets)
            spread = moment_objective(self.layout, spread_targets(self.targets))
            if self.pattern is not None:
                pattern = self.pattern.device(objective.target.shape[0])
        else:
            objective, spread = table_objective(self.layout, self.graph, self.targets, self.l2_regularization), None
        return Program(self.plan.device(), objective, spread, pattern)

    def objective(self):
        return self.program.objective


@attrs.frozen(eq=False)
class SMMFit:
    """The fitted model: parameters, table moments per factor, marginals per variable."""

    graph: FactorGraph  # factor parameters are the fitted tables
    params: Any  # multipliers [K] (moment targets) or one table per factor
    table_moments: list  # per factor: E[1{x_f = cell}], unpadded
    marginals: list  # per variable: state probabilities
    converged: bool
    n_iterations: int
    history: dict
    diagnostics: dict
    state: Any = None  # final chains and key, to continue sampling


def _seed(rng) -> np.ndarray:
    """uint32[2] stream seed from an int (or an existing seed array)."""
    if rng is None:
        rng = 0
    if isinstance(rng, (int, np.integer)):
        return seed_words(int(rng))
    return np.asarray(rng, dtype=np.uint32).reshape(2)


def _host_tables(model: SMMModel, params) -> list[np.ndarray]:
    """Factor tables of the answer, per graph factor (float64, unpadded)."""
    if isinstance(model.targets, MomentTargets):
        tables = [np.zeros(f.table_shape) for f in model.graph.factors]
        for lam, constraint in zip(np.asarray(params, np.float64), model.targets.constraints):
            tables[constraint.factor_id] = tables[constraint.factor_id] + lam * constraint.feature
        return tables
    return unpad_tables(model.layout, model.graph, params)


def _off_optimum(model: SMMModel, config: SMMConfig, estimate: FinalEstimate) -> bool:
    """Whether the final means put the multipliers measurably off the optimum.

    True when a dual gradient entry (report units) exceeds ``tolerance`` plus twice the
    means' standard error: the averaged multipliers missed by more than the final
    estimate's noise, which a Newton step from these precise means corrects.
    """
    gradient = scaled_gradient(model.targets, _params(estimate, len(model.targets.constraints)),
                               estimate.table_moments)
    return bool(np.max(np.abs(gradient), initial=0.0) > config.tolerance + 2.0 * estimate.stderr)


def _params(estimate: FinalEstimate, n: int) -> np.ndarray:
    """The estimate's first ``n`` multipliers (the constraints'), on the host in float64."""
    return np.asarray(jax.device_get(estimate.state.params), np.float64)[:n]


def _at(model, config, static, estimate: FinalEstimate, lambdas, scope_plan, covariance,
        measure_covariance: bool, certifying: bool = False) -> FinalEstimate:
    """A fresh final estimate at multipliers ``lambdas``, continuing ``estimate``'s chains.

    ``certifying``: half the chains restart and all burn in as the certificate's do, so
    the estimate's chain groups are the certificate's (:func:`.certificate.certify_estimate`).
    """
    params = np.asarray(jax.device_get(estimate.state.params), np.float64)
    params[: len(lambdas)] = lambdas
    state = estimate.state._replace(params=jnp.asarray(params, jnp.float32))
    if certifying:
        state, config = restart_for_certificate(static, model.program.plan, config, state)
    return final_estimate(model, config, static, state, scope_plan, covariance, measure_covariance)


#: A polish step is shortened only when the slope along it turned by more than this many standard errors.
SLOPE_Z = 2.0


def secant_length(slope_before: float, slope_after: float, slope_stderr: float) -> float:
    """The step length that the slopes of the dual along a step at its ends put at the line's optimum.

    ``slope_before`` and ``slope_after`` are ``g . d`` at the start and the end of the
    step ``d`` (``g`` the ascent gradient): the dual is concave, so its slope falls
    along ``d``, and where it turned negative (past ``SLOPE_Z`` standard errors) the
    step overshot; the optimum of the quadratic through both slopes is at
    ``slope_before / (slope_before - slope_after)``, which lies in (0, 1). Otherwise 1.
    """
    if not slope_before > 0.0 or not slope_after < -SLOPE_Z * slope_stderr:
        return 1.0
    return slope_before / (slope_before - slope_after)


def _polish(model: SMMModel, config: SMMConfig, static: Static, estimate: FinalEstimate,
            scope_plan: HostScopePlan | None, covariance: str,
            certified: bool = False) -> tuple[FinalEstimate, int, int, bool]:
    """Up to ``polish_steps`` Newton steps from the final moments (see :mod:`.polish`).

    Each step is taken from the last estimate's moments and re-estimated at its
    multipliers; a further step only while that estimate is off the optimum
    (:func:`_off_optimum`). The local curvature leaves out the covariances of
    constraints that share no variable, so in a strongly coupled cluster the step can
    overshoot (on a 1,000-variable synthetic tree, around a variable with eleven
    conditionals on it, three full steps took a residual from 0.037 to -0.085 and the
    marginals 0.07 off). The slope of the dual along the step, read from the
    re-estimate, shows it: where it turned, the step is cut back to the secant length
    (:func:`secant_length`) and estimated again. A step is not judged by the
    re-estimate's largest report-unit gradient: where a ratio's fitted value is far
    from its target, that gradient carries the denominator's noise magnified (on
    fbarch_tiny_20 it read 0.0125 at a step that had brought the reported ratio from
    0.0215 to 0.0014 of the exact one); the slope is in the dual's own units.
    With ``certified``, an estimate after which no further step can come (the last of
    ``polish_steps``) runs on the certificate's chain groups, so the certificate is
    read from it instead of from sweeps of its own (a fifth of a 1,000-variable fit's
    final phase). Returns the last estimate, the steps taken, the sweeps all the
    estimates ran and whether the last estimate carries the certificate's groups.
    """
    n = len(model.targets.constraints)
    steps = 0
    sweeps = estimate.total_sweeps
    certifying = False  # whether the last estimate ran on the certificate's chain groups
    pattern = model.pattern if covariance == "local" else None
    while steps < config.polish_steps and (steps == 0 or _off_optimum(model, config, estimate)):
        start = _params(estimate, n)
        before = dual_gradient(model.targets, start, estimate.table_moments)
        direction = newton_step(model.targets, start, estimate.table_moments, estimate.covariance, pattern) - start
        further = steps + 1 < config.polish_steps  # the estimates at this step may feed another one
        certifying = certified and not further
        stepped = _at(model, config, static, estimate, start + direction, scope_plan, covariance, further, certifying)
        sweeps += stepped.total_sweeps
        after = dual_gradient(model.targets, _params(stepped, n), stepped.table_moments)
        length = secant_length(float(before @ direction), float(after @ direction),
                               stepped.stderr * float(np.linalg.norm(direction)))
        if length < 1.0:  # between two points within the sign bounds: within them too
            stepped = _at(model, config, static, stepped, start + length * direction, scope_plan, covariance, further,
                          certifying)
            sweeps += stepped.total_sweeps
            after = dual_gradient(model.targets, _params(stepped, n), stepped.table_moments)
        if made_worse(before, after, stepped.stderr):
            return estimate, steps, sweeps, False  # the step is dropped: the estimate before it stands
        estimate = stepped
        steps += 1
    return estimate, steps, sweeps, certifying


#: A polish step is dropped when its re-estimate's largest dual gradient exceeds the one before by this many standard errors.
WORSE_Z = 4.0


def made_worse(before: np.ndarray, after: np.ndarray, stderr: float) -> bool:
    """Whether a step took the largest dual gradient (dual units) up by more than ``WORSE_Z`` standard errors.

    The Newton step trusts the chains' feature covariance; where constraints are
    nearly collinear (``P(b) = 0.45`` beside ``P(not b) = 0.55``) among conflicting
    ones, an error in it can send the step the wrong way: on a stress problem (seed
    100128) one step took the largest gradient from 0.027 to 0.062 and the target
    0.059 off the exact answer, where the estimate before it was 0.003 off. Dual units,
    not report units, so a ratio's noisy denominator does not count against the step
    (see :func:`_polish`).
    """
    if not np.isfinite(stderr):
        return False
    worst_before = float(np.max(np.abs(before), initial=0.0))
    return float(np.max(np.abs(after), initial=0.0)) > worst_before + WORSE_Z * stderr


#: The polish steps with the full feature covariance, averaged over the final estimate's
#: evaluations, for at most this many constraints (its host eigendecomposition: 0.8 s at
#: 2,000, 7.6 s at 4,096 on a 2-core CPU) ...
DENSE_POLISH_MAX = 4096
#: ... and with at least this many samples (chains x evaluations of one batch) per constraint.
POLISH_SAMPLES_PER_MULTIPLIER = 8


def polish_curvature(curvature: str, n_constraints: int, config: SMMConfig) -> str:
    """The covariance the polish's Newton step reads: ``dense`` where the final estimate can measure it.

    The search's local curvature (:mod:`.curvature`) drops the covariance of
    constraints that share no variable, which a strongly coupled cluster makes large;
    from one iteration's chains the full one is singular. The final estimate averages
    it over many evaluations: on 1,000-variable synthetic trees (1,999 constraints,
    2,048 chains x 15 evaluations) one polish step from it took the largest residual
    from 0.0185 to 0.0062 and the marginals to 0.0034 of the exact ones (seed 1), where
    with the local one they stayed 0.016 off.
    """
    if curvature != "local":
        return curvature
    samples = math.ceil(config.final_sweeps / max(int(config.scope_every), 1)) * config.num_chains
    if n_constraints <= DENSE_POLISH_MAX and n_constraints * POLISH_SAMPLES_PER_MULTIPLIER <= samples:
        return "dense"
    return curvature


#: The final estimate burns in for this many of the chains' integrated autocorrelation times ...
BURN_IN_TIMES = 5
#: ... and at least this many sweeps, at most ``burn_in_sweeps``.
MIN_BURN_IN = 10


def adaptive_burn_in(config: SMMConfig, autocorrelation: float | None) -> int:
    """Sweeps of burn-in before each final estimate: ``BURN_IN_TIMES`` autocorrelation times.

    After the search the chains are off equilibrium at the answer's multipliers by
    about one iterate's noise, a perturbation that decays like ``exp(-t / tau_exp)``.
    The integrated autocorrelation time ``tau`` measured is about twice ``tau_exp``
    for a slowly decorrelating feature (``(1 + rho) / (1 - rho)`` against
    ``-1 / log rho``), so five of them are ten ``tau_exp``: the perturbation shrinks
    by ``e^-10``, and a fresh chain's (the certificate burns in twice as long) by
    ``e^-20``. ``autocorrelation`` is the last chunk's measurement
    (:func:`.step.autocorrelation_time`); where there is none, or the chains did not
    decorrelate within that chunk (a value of half its sweeps or more),
    ``burn_in_sweeps`` as configured, which also caps the result.
    """
    limit = int(config.burn_in_sweeps)
    chunk_sweeps = config.chunk_size * config.mcmc_steps_per_iteration
    if autocorrelation is None or not np.isfinite(autocorrelation) or autocorrelation >= 0.5 * chunk_sweeps:
        return limit
    return min(limit, max(MIN_BURN_IN, math.ceil(BURN_IN_TIMES * autocorrelation)))


def make_static(model: SMMModel, config: SMMConfig) -> tuple[Static, str | None]:
    """The compile-time settings of a fit, and a note when the optimiser asked for cannot run."""
    optimizer, note = config.optimizer, None
    if optimizer == "newton" and not isinstance(model.targets, MomentTargets):
        # one multiplier per table cell: no Hessian to estimate; said in the diagnostics
        optimizer, note = "adam", "table targets have no Newton step: adam is used"
    curvature = "diagonal"
    if isinstance(model.targets, MomentTargets):
        curvature = curvature_mode(len(model.targets.constraints), config.num_chains, model.pattern is not None)
    static = Static(
        model.layout.shape,
        optimizer,
        config.mcmc_steps_per_iteration,
        float(config.temperature),
        None if config.grad_clip is None else float(config.grad_clip),
        float(config.logit_clip),
        float(config.tolerance),
        model.devices,
        curvature,
    )
    return static, note


def fit_model(
    model: SMMModel,
    config: SMMConfig,
    progress: Callable[[int, int, dict], None] | None = None,
    rng=None,
    initial_state: TrainState | None = None,
    certified: bool = True,
) -> SMMFit:
    """Run the full schedule: search until converged, average, estimate, polish, certify (see module doc).

    ``initial_state`` (an earlier fit's ``state``, same layout) warm-starts the search:
    its chains, multipliers and random stream position replace the uniform start.
    ``certified=False`` leaves the certificate out (a provisional fit: ``converged`` is
    the search's own test until :func:`certify_fit` runs it).
    """
    started = time.perf_counter()
    plan, objective, _, _ = model.program
    static, optimizer_note = make_static(model, config)
    seed = _seed(config.seed if rng is None else rng)
    state = init_state(static, plan, objective, config.num_chains, seed)
    if initial_state is not None:  # copies: run_chunk donates its input, the earlier fit keeps its own
        state = state._replace(**{k: getattr(initial_state, k).copy() for k in ("x", "params", "seed", "counter")})
    schedule = run_schedule(model, config, static, state, seed, progress, refit=initial_state is not None)
    state = schedule.state

    # the final estimates, polish and certificate burn in for the chains' measured autocorrelation
    burn_in = adaptive_burn_in(config, schedule.autocorrelation)
    config = attrs.evolve(config, burn_in_sweeps=burn_in)
    t0 = time.perf_counter()
    rare = rare_condition_factors(model, host_table_moments(model, schedule.total), config.scope_threshold)
    scope_plan = build_scope_plan(model.graph, model.layout, rare) if rare else None
    can_polish = (config.polish_steps > 0 and isinstance(objective, MomentObjective)
                  and static.curvature in ("dense", "local"))
    covariance = polish_curvature(static.curvature, len(model.targets.constraints), config) if can_polish else None
    estimate = final_estimate(model, config, static, state, scope_plan, covariance)
    polish_steps, final_sweeps_run, certifies = 0, estimate.total_sweeps, False
    if can_polish and (rare or _off_optimum(model, config, estimate)):
        estimate, polish_steps, final_sweeps_run, certifies = _polish(model, config, static, estimate, scope_plan,
                                                                      covariance, certified)
    state, table_moments, marginal_sum = estimate.state, estimate.table_moments, estimate.marginal_sum
    sweeps, changed = estimate.sweeps, estimate.changed
    final_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    certificate = None  # see .certificate
    if certifies:
        certificate = certify_estimate(model, config, estimate)
    elif certified:
        certificate = certify(model, config, static, plan, objective, state)
    certificate_seconds = time.perf_counter() - t0 if certified else 0.0
    search_converged, converged = schedule.converged, schedule.converged if certificate is None else certificate.passed

    graph = model.graph
    marginals = []
    for index, size in enumerate(graph.sizes):
        p = np.clip(marginal_sum[index, :size], 0.0, None)
        marginals.append(p / p.sum())
    answer = jax.device_get(state.params)
    tables = _host_tables(model, answer)
    params_out = np.asarray(answer, np.float64)[: len(model.targets.constraints)] if isinstance(objective, MomentObjective) else tables
    chunk_times = schedule.chunk_times
    warm = chunk_times[1:] or chunk_times
    n_sites = max(model.plan.n_sites, 1)
    sweeps_per_chunk = config.chunk_size * config.mcmc_steps_per_iteration
    diagnostics = {
        "num_chains": config.num_chains,
        "devices": model.devices,
        "optimizer": static.optimizer,
        "optimizer_note": optimizer_note,
        "curvature": static.curvature if dual_step(static.optimizer, objective, static.grad_clip).uses_chains else None,
        "local_pairs": model.pattern.n_pairs if model.pattern is not None else 0,
        "search_iterations": schedule.search_iterations,
        "averaging_iterations": schedule.averaging_iterations,
        "sweeps": len(chunk_times) * sweeps_per_chunk + final_sweeps_run,
        "final_sweeps": int(sweeps),
        "autocorrelation_sweeps": schedule.autocorrelation,
        "burn_in_sweeps": burn_in,
        "final_stderr": estimate.stderr,
        "first_chunk_s": chunk_times[0],
        "compile_time_s": max(chunk_times[0] - float(np.median(warm)), 0.0),
        "chunk_s": float(np.median(warm)),
        "final_s": final_seconds,
        "certificate_s": certificate_seconds,
        "final_acceptance": changed / max(sweeps, 1.0) / n_sites,
        "scope_factors": len(rare),
        "polish_steps": polish_steps,
        "search_converged": search_converged,
        "certificate": None if certificate is None else certificate.as_dict(),
        "certificate_in_estimate": certifies,  # read from the last polish estimate's chain groups
        "certified": certified,
        "runtime_s": time.perf_counter() - started,
        "padded_shape": tuple(model.layout.shape),
        "colours": int(model.plan.colours.max()) + 1 if graph.n_vars else 0,
    }
    return SMMFit(
        graph=graph.with_tables(tables),
        params=params_out,
        table_moments=table_moments,
        marginals=marginals,
        converged=converged,
        n_iterations=schedule.iterations,
        history=schedule.history,
        diagnostics=diagnostics,
        state=state,
    )


def certify_fit(model: SMMModel, config: SMMConfig, fit: SMMFit) -> SMMFit:
    """``fit`` with the certificate a provisional fit (``certified=False``) left out.

    Runs the certificate's own sweeps, as :func:`fit_model` does when its last estimate
    did not carry the certificate's chain groups (same burn-in, same fresh chains). A
    fit certified already is returned as it is.
    """
    if fit.diagnostics.get("certified", True) or fit.state is None:
        return fit
    plan, objective, _, _ = model.program
    static, _ = make_static(model, config)
    config = attrs.evolve(config, burn_in_sweeps=int(fit.diagnostics["burn_in_sweeps"]))
    t0 = time.perf_counter()
    certificate = certify(model, config, static, plan, objective, fit.state)
    diagnostics = dict(fit.diagnostics, certified=True, certificate_s=time.perf_counter() - t0,
                       certificate=None if certificate is None else certificate.as_dict())
    converged = fit.converged if certificate is None else certificate.passed
    return attrs.evolve(fit, converged=converged, diagnostics=diagnostics)


#: What :func:`fit_smm` uses for an argument left out when no ``config`` is passed.
FIT_SMM_DEFAULTS = {"num_iterations": 200, "mcmc_steps_per_iteration": 2, "learning_rate": 0.5,
                    "optimizer": "sgd", "l2_regularization": 1e-3}


def fit_smm(
    graph: FactorGraph,
    targets,
    num_iterations: int | None = None,
    mcmc_steps_per_iteration: int | None = None,
    learning_rate: float | None = None,
    optimizer: str | None = None,
    l2_regularization: float | None = None,
    rng=None,
    *,
    config: SMMConfig | None = None,
    progress: Callable[[int, int, dict], None] | None = None,
):
    """Fit ``graph``'s factor tables to ``targets``; return ``(trained graph, history)``.

    ``targets`` is a :class:`~.targets.TableTargets` (one indicator per table cell) or
    a :class:`~.targets.MomentTargets`. The keyword arguments given override
    ``config``; those left out keep ``config``'s values, or without a ``config``
    :data:`FIT_SMM_DEFAULTS` (plain SGD, step 0.5). ``rng`` defaults to the config's
    ``seed``. The history also carries ``marginals`` (per variable), ``params``,
    ``table_moments`` and ``diagnostics``.
    """
    given = {"num_iterations": num_iterations, "mcmc_steps_per_iteration": mcmc_steps_per_iteration,
             "learning_rate": learning_rate, "optimizer": optimizer, "l2_regularization": l2_regularization}
    overrides = {name: value for name, value in given.items() if value is not None}
    config = attrs.evolve(config, **overrides) if config is not None else SMMConfig(**{**FIT_SMM_DEFAULTS, **overrides})
    model = SMMModel.build(graph, targets, config.num_chains, l2_regularization=config.l2_regularization,
                           devices=config.devices, block_moves=config.block_moves)
    fit = fit_model(model, config, progress=progress, rng=rng)
    history = dict(fit.history)
    history.update(
        marginals=fit.marginals,
        params=fit.params,
        table_moments=fit.table_moments,
        converged=fit.converged,
        diagnostics=fit.diagnostics,
    )
    return fit.graph, history
