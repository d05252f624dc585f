"""The step schedule: a search until converged, then a Polyak-averaging phase (host side).

Both phases run the compiled chunk of :mod:`.step` (``chunk_size`` iterations per
call); between chunks Python reports progress, checks convergence (every moment
error, averaged over the chunk's last half of iterations, within ``tolerance``
plus three Monte Carlo standard errors of one iteration; see :func:`.step.run_chunk`)
and saves a checkpoint when asked. The averaging phase keeps a constant
step for Newton (each iterate is then an independent noisy estimate of the optimum,
which a constant step averages best) and a ``1 / sqrt(t)`` decay for first-order
steps; its average replaces the multipliers at the end.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

from . import checkpoint
from .dual_step import dual_step
from .mcmc.sweep import zero_accumulators
from .step import Static, TrainState, run_chunk

HISTORY_KEYS = ("iteration", "max_error", "mean_error", "acceptance", "runtime", "averaging")


class ScheduleResult(NamedTuple):
    state: TrainState  # multipliers replaced by their average when there was an averaging phase
    total: Any  # the last chunk's Rao-Blackwellised sums
    converged: bool  # the search's own test passed
    iterations: int  # iterations run, both phases
    search_iterations: int
    averaging_iterations: int
    history: dict
    chunk_times: list
    autocorrelation: float | None  # the last chunk's autocorrelation time in sweeps (None: no chunk ran)


def record(history, infos, start_iteration, seconds, averaging):
    n = len(np.asarray(infos.max_error))
    history["iteration"].extend(range(start_iteration + 1, start_iteration + n + 1))
    history["max_error"].extend(np.asarray(infos.max_error, dtype=float).tolist())
    history["mean_error"].extend(np.asarray(infos.mean_error, dtype=float).tolist())
    history["acceptance"].extend(np.asarray(infos.acceptance, dtype=float).tolist())
    history["runtime"].extend([seconds / n] * n)
    history["averaging"].extend([bool(averaging)] * n)


def averaging_steps(constant: bool, lr: float, start: int, chunk: int) -> np.ndarray:
    """The step of the averaging phase's iterations ``start .. start + chunk``: ``lr``, or ``lr / sqrt(1 + t)``."""
    t = np.arange(start, start + chunk)
    return lr * (np.ones(chunk) if constant else 1.0 / np.sqrt(1.0 + t))


def run_schedule(model, config, static: Static, state: TrainState, seed,
                 progress: Callable[[int, int, dict], None] | None = None, refit: bool = False) -> ScheduleResult:
    """Search, then average; resumes from a checkpoint of ``config.checkpoint_dir`` when there is one."""
    plan, objective, _, pattern = model.program
    constant = dual_step(static.optimizer, objective, static.grad_clip).constant_averaging
    history = {k: [] for k in HISTORY_KEYS}
    chunk = config.chunk_size
    n_search = math.ceil(config.num_iterations / chunk)
    n_average = math.ceil(config.averaging_iterations / chunk)
    lr = float(config.learning_rate)
    zeros = np.zeros(chunk, np.float32)
    converged = False
    done = 0
    chunk_times: list[float] = []
    autocorrelation = None  # the last chunk's, in sweeps

    def advance(state, lrs, averaging):
        nonlocal done, autocorrelation
        t0 = time.perf_counter()
        result = run_chunk(static, plan, objective, pattern, state, np.asarray(lrs, np.float32), zeros + averaging)
        state = result.state
        infos, total, verdict, tau = jax.device_get((result.infos, result.total, result.converged,
                                                     result.autocorrelation))
        autocorrelation = float(tau)
        seconds = time.perf_counter() - t0
        chunk_times.append(seconds)
        record(history, infos, done, seconds, averaging)
        done += chunk
        if progress is not None:
            metrics = {"max_error": float(infos.max_error[-1]), "mean_error": float(infos.mean_error[-1])}
            progress(done, (n_search + n_average) * chunk, metrics)
        return state, infos, total, bool(verdict)

    total = None
    at = checkpoint.Position()
    saver = checkpoint.FitCheckpoints.open(config, model, seed, refit=refit)
    restored = saver.restore(state, zero_accumulators(static.shape)) if saver else None
    if restored is not None:  # resume where the checkpoint left off
        state, total, at, history, chunk_times = restored
        converged, done = at.converged, (at.search_chunks + at.average_chunks) * chunk
    for k in range(at.search_chunks, 0 if at.converged else n_search):
        state, infos, total, converged = advance(state, zeros + lr, 0.0)
        at = at._replace(search_chunks=k + 1, converged=converged)
        if saver:
            saver.save(state, total, at, history, chunk_times, end_of_phase=converged or k + 1 == n_search)
        if converged:
            break
    for c in range(at.average_chunks, n_average):
        state, _, total, _ = advance(state, averaging_steps(constant, lr, c * chunk, chunk), 1.0)
        at = at._replace(average_chunks=c + 1)
        if saver:
            saver.save(state, total, at, history, chunk_times, end_of_phase=c + 1 == n_average)
    if saver:
        saver.close()
    if n_average:
        state = state._replace(params=state.average)
    return ScheduleResult(state, total, converged, done, at.search_chunks * chunk, n_average * chunk, history,
                          chunk_times, autocorrelation)

