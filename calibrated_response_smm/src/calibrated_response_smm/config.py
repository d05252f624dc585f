"""SMM settings: the core compiler's fields plus the sampler and optimiser knobs."""

from __future__ import annotations

import os
from typing import ClassVar

import attrs
from calibrated_response_plugins.config import (
    CoreConfig,
    finite_non_negative,
    finite_positive,
    int_at_most,
    non_negative_int,
    number_at_least,
    number_at_most,
    positive_int,
)

OPTIMIZERS = ("newton", "adam", "sgd")

# Limits that keep every fit finite and reporting progress (docs/limits.md).
#: Most bins per continuous variable: a pair factor of two such variables is
#: ``SMM_MAX_BINS**2`` cells, each sampled and reduced every sweep.
SMM_MAX_BINS = 200
#: Most Gibbs sweeps between two progress reports (one compiled call): a chunk of
#: ``chunk_size * mcmc_steps_per_iteration`` sweeps, and each burn-in or final batch.
MAX_SWEEPS_PER_CALL = 100_000
#: Most sweeps of one final estimate (it reports no progress), and most polish steps
#: (each one a further final estimate).
MAX_FINAL_SWEEPS = 10 * MAX_SWEEPS_PER_CALL
MAX_POLISH_STEPS = 20
#: Temperatures outside this range make the conditionals' logits overflow float32
#: (``logit_clip / temperature``) or flatten them to uniform.
MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-2, 1e2
#: Largest factor-table entry: float32 logits stay exact sums well below overflow.
MAX_LOGIT_CLIP = 1e6
#: Largest step size and per-step multiplier change.
MAX_LEARNING_RATE = 1e3
MAX_GRAD_CLIP = 1e6
#: Most chains: the chain states alone take ``num_chains x variables`` int32 words.
MAX_CHAINS = 2**24


def _path_text(value):
    """A path object as its text (the config stays JSON-friendly); anything else as given."""
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def _directory(instance, attribute, value):
    """attrs validator: None or a non-empty path."""
    if value is None:
        return
    if not isinstance(value, str) or not value:
        raise ValueError(f"config field {attribute.name!r} must be a directory path, got {value!r}")


@attrs.frozen(kw_only=True)
class SMMConfig(CoreConfig):
    """Stochastic moment matching settings.

    :param num_chains: persistent Gibbs chains, all updated at once.
    :param num_iterations: most optimisation iterations before the averaging phase.
    :param mcmc_steps_per_iteration: Gibbs sweeps between two multiplier updates.
    :param learning_rate: step size (a damping factor for ``newton``).
    :param optimizer: ``newton`` (dual Newton step preconditioned by the chains'
        feature covariance; above 1,024 constraints or with fewer than 4 chains per
        constraint, by its entries between constraints that share a variable, see
        ``curvature``), ``adam`` or ``sgd``.
    :param grad_clip: largest change of one multiplier in one step (None: no limit):
        the Newton direction is scaled down as a whole to it before its line search,
        first-order steps are clipped entry by entry. A feature the chains never see has
        no measured curvature, so its Newton step is the gradient over ``s^2`` and the
        chains' reweighting cannot check it: 5 nats at most keeps such a step from
        moving every chain into a state it then cannot leave.
    :param logit_clip: factor table entries are clipped to +/- this.
    :param temperature: conditionals are sampled from ``exp(logits / temperature)``.
    :param tolerance: converged when every moment error is within this plus three
        Monte Carlo standard errors.
    :param averaging_iterations: final iterations with a decaying step whose
        multipliers are averaged (Polyak); the averaged multipliers are the answer.
    :param burn_in_sweeps: sweeps at the averaged multipliers before the final estimate
        (and before each polish re-estimate): the chains come from the last iterate's
        multipliers, and where they mix slowly (autocorrelation times of 50-100 sweeps
        on strongly coupled cases) a short burn-in biases every final mean alike.
    :param final_sweeps: sweeps the final marginals and moments are averaged over, at
        least; batches of as many are added while the standard error of a constraint
        mean (report units, from the spread of the chains' own averages, so slow
        mixing counts) exceeds ``final_tolerance``, up to ``max_final_sweeps``.
    :param final_tolerance: the standard error the final means are extended to reach.
    :param max_final_sweeps: most sweeps of one final estimate.
    :param chunk_size: iterations per compiled chunk; Python runs only between chunks.
        Held to at most ``num_iterations`` and to ``MAX_SWEEPS_PER_CALL`` sweeps per chunk.
    :param scope_threshold: in the final estimate, a factor carrying a conditional
        whose condition has probability below this (after the averaging phase)
        averages the exact conditional of its whole scope given the rest of each
        chain (see ``scope_moments``) instead of sampled indicators; 0 turns it off.
    :param scope_every: sweeps between two such scope evaluations.
    :param block_moves: after each group of sweeps, redraw both variables of every
        pairwise factor whose interaction spans more than ``mcmc.blocks.COUPLING``
        nats from their exact joint conditional (see ``mcmc.blocks``): strongly
        conflicting estimates make such pairs, which single-site Gibbs crosses
        rarely. Graphs with more than ``mcmc.blocks.MAX_BLOCKS`` pairwise scopes get
        none.
    :param polish_steps: where such factors exist, or the final means put the
        multipliers off the optimum, at most this many Newton steps on the dual from
        the final moments, each re-estimated at its multipliers, a further one only
        while that estimate is still off the optimum (see ``polish``); 0 turns it off.
    :param devices: local devices the chains are split across (each sweeps its share;
        the moments are averaged over all chains; with several processes, see
        ``calibrated_response_smm.distributed``, every process's devices, always all of
        them). None: all of them when a sweep has
        at least ``2**20`` site updates (variables x chains) and there are at most
        ``2**20`` multipliers (the dual step is replicated), else one. On a CPU there
        is one device per core once :func:`calibrated_response_smm.use_cpu_cores` ran
        before JAX started (see ``one_device_per_core``). Each chain's
        random stream is keyed by the seed and its global index, so every count draws
        the same chains; the averages across devices add in another order, which the
        Newton step's solve can magnify to a fraction of the Monte Carlo error.
    :param checkpoint_dir: directory for checkpoints of the fit (None: none). The
        state after a chunk (chains, multipliers, optimiser state, random stream
        position, schedule position, history) is written there every
        ``checkpoint_every`` chunks and at the end of the search and averaging phases;
        a fit of the same problem with the same settings and seed resumes from the
        newest one and reaches the same answer as an uninterrupted run. A checkpoint
        of another fit there is refused (ValueError). Needs ``orbax-checkpoint``.
    :param checkpoint_every: chunks between two checkpoints.
    :param checkpoint_keep: checkpoints kept (the newest ones).
    :param one_device_per_core: let the backend call
        :func:`calibrated_response_smm.use_cpu_cores` before its first compile. That
        sets JAX's CPU device count for the whole process, so it is off by default;
        it has no effect once JAX has started or when the count was chosen already.
    :param compilation_cache: where compiled programs are kept for the next process
        (see :mod:`calibrated_response_smm.compilation_cache`): ``"auto"`` (default)
        ``$CALIBRATED_RESPONSE_CACHE`` or ``~/.cache/calibrated_response/jax``; a path:
        that directory; None or ``"off"``: none. A cache directory JAX was given already
        wins. Process-wide, as JAX's setting is.
    :param correlation_rounds: as in the core config (fewer by default: each round is a
        full stochastic fit, warm-started from the last one's chains and multipliers).
    :param correlation_tolerance: as in the core config, at the chains' noise level.

    ``supported_arity`` (3): the sweep's factor layout has pairwise and triple slots,
    so the compiler skips wider scopes with a reason.
    """

    supported_arity: ClassVar[int] = 3

    max_bins: int = attrs.field(default=21, validator=[positive_int, int_at_most(SMM_MAX_BINS)])
    num_chains: int = attrs.field(default=2048, validator=[positive_int, int_at_most(MAX_CHAINS)])
    num_iterations: int = attrs.field(default=200, validator=positive_int)
    mcmc_steps_per_iteration: int = attrs.field(
        default=2, validator=[positive_int, int_at_most(MAX_SWEEPS_PER_CALL)]
    )
    learning_rate: float = attrs.field(default=1.0, validator=[finite_positive, number_at_most(MAX_LEARNING_RATE)])
    optimizer: str = attrs.field(default="newton", validator=attrs.validators.in_(OPTIMIZERS))
    grad_clip: float | None = attrs.field(
        default=5.0, validator=attrs.validators.optional([finite_positive, number_at_most(MAX_GRAD_CLIP)])
    )
    logit_clip: float = attrs.field(default=1e4, validator=[finite_positive, number_at_most(MAX_LOGIT_CLIP)])
    temperature: float = attrs.field(
        default=1.0,
        validator=[finite_positive, number_at_least(MIN_TEMPERATURE), number_at_most(MAX_TEMPERATURE)],
    )
    tolerance: float = attrs.field(default=2e-3, validator=finite_positive)
    averaging_iterations: int = attrs.field(default=60, validator=non_negative_int)
    burn_in_sweeps: int = attrs.field(default=100, validator=[non_negative_int, int_at_most(MAX_SWEEPS_PER_CALL)])
    final_sweeps: int = attrs.field(default=60, validator=[positive_int, int_at_most(MAX_SWEEPS_PER_CALL)])
    final_tolerance: float = attrs.field(default=3e-3, validator=finite_positive)
    max_final_sweeps: int = attrs.field(default=960, validator=[positive_int, int_at_most(MAX_FINAL_SWEEPS)])
    chunk_size: int = attrs.field(default=10, validator=positive_int)
    scope_threshold: float = attrs.field(default=0.05, validator=finite_non_negative)
    scope_every: int = attrs.field(default=4, validator=[positive_int, int_at_most(MAX_SWEEPS_PER_CALL)])
    block_moves: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    polish_steps: int = attrs.field(default=1, validator=[non_negative_int, int_at_most(MAX_POLISH_STEPS)])
    devices: int | None = attrs.field(default=None, validator=attrs.validators.optional(positive_int))
    checkpoint_dir: str | None = attrs.field(default=None, converter=_path_text, validator=_directory)
    checkpoint_every: int = attrs.field(default=10, validator=positive_int)
    checkpoint_keep: int = attrs.field(default=2, validator=positive_int)
    one_device_per_core: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    compilation_cache: str | None = attrs.field(default="auto", converter=_path_text,
                                                validator=attrs.validators.optional(attrs.validators.instance_of(str)))
    # The chains' moments move by Monte Carlo noise (~1e-3) from round to round, so the
    # correlation loop stops at that scale rather than at the exact backends' 1e-6.
    correlation_rounds: int = attrs.field(default=12, validator=positive_int)
    correlation_tolerance: float = attrs.field(default=2e-3, validator=finite_positive)

    def __attrs_post_init__(self):
        # A chunk longer than the search would run iterations nobody asked for as one
        # call with no progress in between (chunk_size=10**6, num_iterations=20); and no
        # chunk may hold more than MAX_SWEEPS_PER_CALL sweeps. The frozen class is
        # written once here, before anyone can see it.
        longest = max(1, MAX_SWEEPS_PER_CALL // self.mcmc_steps_per_iteration)
        object.__setattr__(self, "chunk_size", min(self.chunk_size, self.num_iterations, longest))
