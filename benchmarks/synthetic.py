"""Synthetic forecasting problems on sparse random graphs, for benchmarks of any size.

A problem of ``n`` variables is a list of real estimates that every backend takes
through the public :class:`~calibrated_response_plugins.DistributionBuilder`:

- variables ``v0000000`` ... : binary, or (a ``continuous_fraction`` of them)
  continuous on ``[0, 100]``;
- one unary estimate per variable: ``P(v = true) = q`` for a binary variable,
  ``E[v] = mu`` for a continuous one;
- one ``P(A_i | C_j) = p`` per edge ``(i, j)`` of a sparse random graph (a random
  recursive tree plus ``extra_edge_fraction * n`` random chords, so the graph is
  connected and loopy, with mean degree about ``2 (1 + extra_edge_fraction)``),
  where the event of a binary variable is ``v = true`` and that of a continuous
  one is ``v > 50``.

Targets come from one deterministic generator seeded by ``seed``: each event has a
base probability ``q_i`` in [0.2, 0.8], and a conditional is ``q_i`` shifted by at
most 0.15, so the estimates are close to a consistent set.

The second half holds what the benchmarks need to time a backend on such a
problem: its size limit (:func:`size_limit_reason`), a short fixed-iteration
configuration (:func:`short_fit_options`), and an :class:`IterationRunner` that
runs a fixed number of training iterations on an already compiled model.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import attrs
import numpy as np

from calibrated_response_plugins.compiler import compile_problem
from calibrated_response_plugins.config import CoreConfig
from calibrated_response_plugins.constraints import ConstraintSet
from calibrated_response_plugins.models import (
    BinaryVariable,
    ConditionalProbabilityEstimate,
    ContinuousVariable,
    EqualityProposition,
    ExpectationEstimate,
    InequalityProposition,
    ProbabilityEstimate,
)
from calibrated_response_plugins.registry import ENTRY_POINT_GROUP, load_backend

LOWER, UPPER, THRESHOLD = 0.0, 100.0, 50.0


@attrs.frozen
class SyntheticProblem:
    """Variables and estimates of one synthetic graph, and the graph itself."""

    variables: tuple = attrs.field(converter=tuple)
    estimates: tuple = attrs.field(converter=tuple)
    edges: np.ndarray = attrs.field(eq=False)
    seed: int

    @property
    def n_variables(self) -> int:
        return len(self.variables)

    @property
    def n_edges(self) -> int:
        return int(self.edges.shape[0])

    @property
    def n_continuous(self) -> int:
        return sum(v.type == "continuous" for v in self.variables)

    @property
    def target_variable(self) -> str:
        return self.variables[0].name


def variable_name(index: int, n_variables: int) -> str:
    """``v`` followed by the zero-padded index (at least 7 digits)."""
    return f"v{index:0{max(7, len(str(n_variables - 1)))}d}"


def sparse_edges(n_variables: int, rng: np.random.Generator, extra_edge_fraction: float) -> np.ndarray:
    """Edges ``[m, 2]`` (child, parent) of a random recursive tree plus distinct random chords."""
    if n_variables < 2:
        return np.zeros((0, 2), dtype=np.int64)
    children = np.arange(1, n_variables)
    parents = (rng.random(n_variables - 1) * children).astype(np.int64)
    tree = np.stack([children, parents], axis=1)
    n_extra = round(extra_edge_fraction * n_variables)
    a = rng.integers(0, n_variables, size=2 * n_extra + 8)
    b = rng.integers(0, n_variables, size=2 * n_extra + 8)
    chords = np.stack([np.maximum(a, b), np.minimum(a, b)], axis=1)
    chords = chords[chords[:, 0] != chords[:, 1]]
    known = {tuple(edge) for edge in tree.tolist()}
    kept = []
    for edge in map(tuple, chords.tolist()):
        if len(kept) == n_extra:
            break
        if edge not in known:
            known.add(edge)
            kept.append(edge)
    return np.concatenate([tree, np.asarray(kept, dtype=np.int64).reshape(-1, 2)])


def make_variable(name: str, continuous: bool):
    """A binary variable, or a continuous one on ``[LOWER, UPPER]``."""
    if continuous:
        return ContinuousVariable(name=name, lower_bound=LOWER, upper_bound=UPPER)
    return BinaryVariable(name=name)


def event_of(variable):
    """``v = true`` for a binary variable, ``v > THRESHOLD`` for a continuous one."""
    if variable.type == "binary":
        return EqualityProposition(variable=variable.name, value=True)
    return InequalityProposition(variable=variable.name, threshold=THRESHOLD, is_lower_bound=True)


def unary_estimate(variable, q: float):
    """``P(v = true) = q`` for a binary variable, ``E[v] = LOWER + q (UPPER - LOWER)`` otherwise."""
    if variable.type == "binary":
        return ProbabilityEstimate(id=f"p_{variable.name}", proposition=event_of(variable), probability=q)
    mean = LOWER + q * (UPPER - LOWER)
    return ExpectationEstimate(id=f"e_{variable.name}", variable=variable.name, expected_value=mean)


def conditional_estimate(event_variable, condition_variable, p: float):
    """``P(event of the first | event of the second) = p``."""
    return ConditionalProbabilityEstimate(
        id=f"c_{event_variable.name}_{condition_variable.name}",
        proposition=event_of(event_variable),
        conditions=(event_of(condition_variable),),
        probability=p,
    )


def synthetic_problem(
    n_variables: int,
    seed: int = 0,
    continuous_fraction: float = 0.25,
    extra_edge_fraction: float = 0.5,
) -> SyntheticProblem:
    """The synthetic problem of ``n_variables`` variables (deterministic in ``seed``)."""
    if n_variables < 1:
        raise ValueError(f"n_variables must be at least 1, got {n_variables}")
    rng = np.random.default_rng(seed)
    edges = sparse_edges(n_variables, rng, extra_edge_fraction)
    is_continuous = rng.random(n_variables) < continuous_fraction
    base = np.round(rng.uniform(0.2, 0.8, n_variables), 3)
    shift = np.round(rng.uniform(-0.15, 0.15, edges.shape[0]), 3)
    variables = [make_variable(variable_name(i, n_variables), bool(c)) for i, c in enumerate(is_continuous)]
    estimates = [unary_estimate(v, float(q)) for v, q in zip(variables, base)]
    estimates += [
        conditional_estimate(variables[i], variables[j], float(np.clip(base[i] + s, 0.05, 0.95)))
        for (i, j), s in zip(edges.tolist(), shift)
    ]
    return SyntheticProblem(variables, estimates, edges, seed)


def synthetic_constraints(problem: SyntheticProblem, config=None) -> ConstraintSet:
    """The compiled :class:`ConstraintSet` of a synthetic problem (what every backend fits)."""
    return compile_problem(problem.variables, problem.estimates, CoreConfig() if config is None else config)


def log10_joint_states(problem: SyntheticProblem, max_bins: int = CoreConfig().max_bins) -> float:
    """``log10`` of the number of joint states (for the size guard of dense backends)."""
    return (problem.n_variables - problem.n_continuous) * math.log10(2) + problem.n_continuous * math.log10(max_bins)


# --------------------------------------------------------------------------- timing backends

SYNTHETIC_SIZES = (100, 1_000, 10_000, 100_000)
SHORT_FIT_ITERATIONS = 2
LIMITS_ENV = "CALIBRATED_RESPONSE_BENCH_LIMITS"

# Largest synthetic problem a backend is timed on by default (a backend missing here has no
# limit); override with e.g. CALIBRATED_RESPONSE_BENCH_LIMITS="smm=100000,pgmax=100000".
# pgmax builds its PGMax factor graph in Python: minutes at 100,000 variables on a 2-core CPU.
# smm: an iteration takes about 6 s at 10,000 variables there (25,000 constraints), and its
# per-chain feature values outgrow memory towards 100,000.
MAX_SYNTHETIC_VARIABLES = {"pgmax": 10_000, "smm": 10_000}

# Options for a short fit of a fixed number of iterations (not a converged fit); keys a
# backend's config does not know are dropped.
SHORT_FIT_OPTIONS = {
    "maxent": {"max_iterations": SHORT_FIT_ITERATIONS, "max_polish_steps": 0},
    "pgmax": {"max_iterations": SHORT_FIT_ITERATIONS, "restarts": 0, "final_bp_iterations": 10},
    "smm": {
        "num_iterations": SHORT_FIT_ITERATIONS,
        "chunk_size": SHORT_FIT_ITERATIONS,
        "averaging_iterations": 0,
        "burn_in_sweeps": 0,
        "final_sweeps": 1,
    },
}


def iterations_per_call(n_variables: int) -> int:
    """Training iterations per timed call: a few on small graphs, one from 10,000 variables."""
    return 10 if n_variables <= 100 else 2 if n_variables <= 1_000 else 1


def size_limits(environ: dict | None = None) -> dict[str, int]:
    """:data:`MAX_SYNTHETIC_VARIABLES` updated by ``$CALIBRATED_RESPONSE_BENCH_LIMITS`` (``name=n,...``)."""
    limits = dict(MAX_SYNTHETIC_VARIABLES)
    text = (os.environ if environ is None else environ).get(LIMITS_ENV, "")
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        limits[name.strip()] = int(value)
    return limits


class Unsupported(Exception):
    """The backend cannot be timed this way; the message says why."""


@attrs.frozen
class IterationRunner:
    """``run()`` performs ``iterations`` training iterations of a compiled model.

    ``run`` returns the device arrays it produced (block on them before reading a
    clock); ``extra`` holds sizes worth recording (chains, sweeps per iteration).
    """

    run: Callable[[], Any]
    iterations: int
    extra: dict = attrs.field(factory=dict)


def backend_distribution(backend: str):
    """The installed distribution that provides ``backend`` (None for in-process backends)."""
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name == backend:
            return getattr(entry_point, "dist", None)
    return None


def uses_jax(backend: str) -> bool:
    """Whether the backend's distribution depends on JAX (directly or through PGMax)."""
    dist = backend_distribution(backend)
    requirements = (dist.requires or []) if dist is not None else []
    names = {re.split(r"[\s;\[<>=!~(]", requirement, maxsplit=1)[0].lower() for requirement in requirements}
    return bool(names & {"jax", "jaxlib", "pgmax"})


def backend_device(backend: str) -> str:
    """Where the backend computes: the JAX devices, or ``cpu (numpy)``."""
    if not uses_jax(backend):
        return "cpu (numpy)"
    import jax

    return ", ".join(f"{d.platform}:{d.id} {d.device_kind}" for d in jax.devices()) + f" (jax {jax.__version__})"


def block(result: Any) -> Any:
    """Wait for JAX arrays in ``result`` to be computed (no-op without JAX)."""
    if "jax" in sys.modules:
        sys.modules["jax"].block_until_ready(result)
    return result


def backend_config(backend: str, options: dict | None = None) -> Any:
    """The backend's validated config for ``options``."""
    return load_backend(backend).hook.make_config(options=options)


def short_fit_options(backend: str) -> dict | None:
    """Options for a fit of ``SHORT_FIT_ITERATIONS`` iterations that the backend's config knows (None: defaults)."""
    options = SHORT_FIT_OPTIONS.get(backend)
    if options is None:
        return None
    known = {field.name for field in attrs.fields(type(backend_config(backend)))}
    return {key: value for key, value in options.items() if key in known}


def size_limit_reason(backend: str, problem: SyntheticProblem) -> str | None:
    """Why ``backend`` is not timed on ``problem`` (None: it is)."""
    config = backend_config(backend)
    max_states = getattr(config, "max_states", None)
    if max_states is not None:
        log_joint = log10_joint_states(problem, config.max_bins)
        if log_joint > math.log10(max_states):
            return (f"{backend} enumerates the joint: about 10^{log_joint:.0f} states for "
                    f"{problem.n_variables:,} variables, above max_states={max_states:,}")
    limit = size_limits().get(backend)
    if limit is not None and problem.n_variables > limit:
        return f"{backend} is timed up to {limit:,} variables by default (raise it with ${LIMITS_ENV})"
    return None


def pgmax_runner(constraints: ConstraintSet, iterations: int) -> IterationRunner:
    """``iterations`` evaluations of the pgmax Bethe dual and its gradient (warm-started BP sweeps each).

    An L-BFGS-B iteration of the pgmax fit costs about one such evaluation.
    """
    import jax
    import jax.numpy as jnp

    from calibrated_response_pgmax import engine

    config = backend_config("pgmax")
    model = load_backend("pgmax").hook.compile_constraints(problem=constraints, config=config)
    with jax.enable_x64(True):
        statics = engine.make_statics(model.layout, model.graph, constraints)
        evaluate = engine.build_evaluate(model.graph, statics, model.layout, config)
        lambdas = jnp.zeros(len(constraints.constraints), dtype=jnp.float64)
        first_msgs = jnp.asarray(np.asarray(model.graph.initial_arrays.ftov_msgs), dtype=jnp.float64)

    def run():
        with jax.enable_x64(True):
            msgs, result = first_msgs, None
            for _ in range(iterations):
                result = evaluate(lambdas, msgs)
                msgs = result[2]
            return result

    extra = {"bp_iterations_per_evaluation": config.bp_iterations, "factors": model.layout.n_factors}
    return IterationRunner(run, iterations, extra)


def smm_static(training, model, config):
    """The smm engine's static settings, as a fit of ``model`` with ``config`` compiles them."""
    return training.make_static(model, config)[0]


def smm_setup(constraints: ConstraintSet, options: dict | None = None):
    """``(config, model, objective, device plan, static)`` of the smm engine for a constraint set."""
    from calibrated_response_smm import training

    config = backend_config("smm", options)
    compiled = load_backend("smm").hook.compile_constraints(problem=constraints, config=config)
    model = compiled.model
    return config, model, model.objective(), model.plan.device(), smm_static(training, model, config)


def smm_runner(constraints: ConstraintSet, iterations: int) -> IterationRunner:
    """``iterations`` smm iterations (Gibbs sweeps of every chain, then a dual step) as one compiled chunk."""
    from calibrated_response_smm import step, training

    config, model, objective, plan, static = smm_setup(constraints, {"chunk_size": iterations})
    state = step.init_state(static, plan, objective, config.num_chains, training._seed(config.seed))
    lrs = np.full(iterations, config.learning_rate, dtype=np.float32)
    averaging = np.zeros(iterations, dtype=np.float32)
    extra = {"chains": config.num_chains, "sweeps_per_iteration": config.mcmc_steps_per_iteration,
             "optimizer": config.optimizer}
    return IterationRunner(smm_chunk_driver(static, plan, objective, state, lrs, averaging, model.program.pattern),
                           iterations, extra)


def smm_chunk_driver(static, plan, objective, state, lrs, averaging, pattern=None) -> Callable[[], Any]:
    """A call running one ``step.run_chunk`` per call from the state the last one left.

    ``run_chunk`` takes over the buffers of the state it is given, so each call passes
    on the state the previous call returned; it returns ``(state, infos, sums)``.
    """
    from calibrated_response_smm import step

    carried = [state]

    def run():
        result = step.run_chunk(static, plan, objective, pattern, carried[0], lrs, averaging)
        carried[0] = result.state
        return result.state, result.infos, result.total

    return run


def smm_gibbs_runner(constraints: ConstraintSet, sweeps: int) -> IterationRunner:
    """``sweeps`` chromatic Gibbs sweeps of every chain through ``PersistentBuffer`` (zero tables)."""
    from calibrated_response_smm import PersistentBuffer, graph_from_constraints

    config = backend_config("smm")
    graph = graph_from_constraints(constraints).graph
    buffer = PersistentBuffer.initialize(graph, config.num_chains, rng=config.seed)
    return IterationRunner(lambda: buffer.sample_step(graph, n_sweeps=sweeps, temperature=config.temperature).x, sweeps,
                           {"chains": config.num_chains})


def _driven(driver, constraints: ConstraintSet, count: int, *, missing: str, api: str) -> IterationRunner:
    """``driver(constraints, count)``; :class:`Unsupported` (saying ``missing`` or naming ``api``) when it cannot run."""
    if driver is None:
        raise Unsupported(missing)
    try:
        return driver(constraints, count)
    except (ImportError, AttributeError, TypeError) as error:
        raise Unsupported(f"{api} is not available: {error!r}") from error


ITERATION_DRIVERS: dict[str, Callable[[ConstraintSet, int], IterationRunner]] = {
    "pgmax": pgmax_runner,
    "smm": smm_runner,
}


def iteration_support(backend: str) -> str | None:
    """None when ``backend`` has an iteration driver, else why not."""
    return None if backend in ITERATION_DRIVERS else f"no iteration driver for {backend} (ITERATION_DRIVERS)"


def iteration_runner(backend: str, constraints: ConstraintSet, iterations: int) -> IterationRunner:
    """A runner of ``iterations`` training iterations; :class:`Unsupported` when there is none."""
    return _driven(ITERATION_DRIVERS.get(backend), constraints, iterations,
                   missing=f"no iteration driver for backend {backend!r} (ITERATION_DRIVERS)",
                   api=f"the {backend} engine API this driver uses")


GIBBS_DRIVERS: dict[str, Callable[[ConstraintSet, int], IterationRunner]] = {"smm": smm_gibbs_runner}


def gibbs_support(backend: str) -> str | None:
    """None when ``backend`` exposes Gibbs sweeps to a driver, else why not."""
    return None if backend in GIBBS_DRIVERS else f"{backend} exposes no Gibbs sweeps"


def gibbs_runner(backend: str, constraints: ConstraintSet, sweeps: int) -> IterationRunner:
    """A runner of ``sweeps`` Gibbs sweeps over all chains (``extra["chains"]``); :class:`Unsupported` when none."""
    return _driven(GIBBS_DRIVERS.get(backend), constraints, sweeps,
                   missing=f"{backend} exposes no Gibbs sweeps", api=f"the {backend} sampler API this driver uses")
