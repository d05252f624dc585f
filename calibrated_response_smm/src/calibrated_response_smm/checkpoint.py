"""Checkpoints of a fit between chunks, and resuming from them (orbax-checkpoint).

A fit's whole trajectory is a function of its state between two chunks: the chains,
the multipliers, the optimiser state, the Polyak average, the random stream's seed
and counter (all in :class:`~.step.TrainState`), the last chunk's accumulated
sums (they pick the final estimate's scope factors), and on the host the schedule
position and the history. :class:`FitCheckpoints` writes these every
``checkpoint_every`` chunks (and at the end of each phase) with orbax's
``CheckpointManager``, keeping the last ``checkpoint_keep``; a fit started with the
same problem, settings and seed resumes from the newest one and, since every draw is
keyed by the stream counter it restores, reaches the answer an uninterrupted run
reaches. The arrays are written as they lie (split across devices or processes),
and before the next chunk starts: that chunk takes over (donation) the very buffers
being written, and on a CPU a host copy of them could share their memory.

A checkpoint records a fingerprint of the problem and of the settings that shape
the trajectory; resuming a different fit from it is refused. The device count is not
part of it: each chain's draws depend on its global index only, so a fit can resume
on another number of devices (the same answer up to the order of floating-point sums).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, NamedTuple

import attrs
import jax
import numpy as np

# Settings that do not change the trajectory, so a resumed fit may change them.
UNFINGERPRINTED = ("checkpoint_dir", "checkpoint_every", "checkpoint_keep", "devices")


class Position(NamedTuple):
    """Where a fit is in its schedule: chunks done in each phase, and whether the search converged."""

    search_chunks: int = 0
    average_chunks: int = 0
    converged: bool = False


class Restored(NamedTuple):
    """What a fit resumes from."""

    state: Any  # TrainState, placed as the template was
    total: Any  # Accumulators of the last chunk
    position: Position
    history: dict
    chunk_times: list


def fingerprint(model, config, seed) -> str:
    """A digest of the problem (graph, layout, objective arrays), the settings and the seed."""
    digest = hashlib.sha256()
    settings = {k: v for k, v in attrs.asdict(config).items() if k not in UNFINGERPRINTED}
    digest.update(json.dumps(settings, sort_keys=True, default=repr).encode())
    digest.update(np.asarray(seed, np.uint32).tobytes())
    digest.update(json.dumps([list(model.layout.shape), list(model.graph.sizes),
                              [[int(v) for v in f.var_ids] for f in model.graph.factors]]).encode())
    for leaf in jax.tree.leaves(model.objective()):
        leaf = np.asarray(leaf)
        digest.update(str((leaf.shape, leaf.dtype)).encode())
        digest.update(leaf.tobytes())
    return digest.hexdigest()


def _leaves(tree) -> dict:
    """``{"000": leaf, ...}``: a pytree's leaves by position (no empty nodes for orbax to keep)."""
    return {f"{i:03d}": leaf for i, leaf in enumerate(jax.tree.leaves(tree))}


def _abstract(tree) -> dict:
    """Shapes, dtypes and placements of a pytree's leaves, as orbax restores into them."""
    return {k: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding) for k, a in _leaves(tree).items()}


@attrs.define(eq=False)
class FitCheckpoints:
    """The checkpoints of one fit in ``directory`` (an orbax ``CheckpointManager``)."""

    directory: str
    every: int
    key: str  # :func:`fingerprint` of the fit
    manager: Any

    @classmethod
    def open(cls, config, model, seed, refit: bool = False) -> FitCheckpoints | None:
        """The checkpoints of the fit of ``model`` with ``config`` and ``seed``, or None when ``config.checkpoint_dir`` is None.

        ``refit``: a warm-started refit (a round of the core's correlation loop, whose
        targets change from round to round) keeps its checkpoints in a subdirectory
        named by its fingerprint, so every round of one run resumes from its own.
        """
        if config.checkpoint_dir is None:
            return None
        key = fingerprint(model, config, seed)
        try:
            import orbax.checkpoint as ocp
        except ImportError as error:  # pragma: no cover - a dependency of the package
            raise ImportError("SMMConfig.checkpoint_dir needs orbax-checkpoint: pip install orbax-checkpoint") from error
        directory = os.path.abspath(os.fspath(config.checkpoint_dir))
        if refit:
            directory = os.path.join(directory, f"refit-{key[:16]}")
        options = ocp.CheckpointManagerOptions(max_to_keep=config.checkpoint_keep, create=True,
                                               enable_async_checkpointing=False)
        return cls(directory, config.checkpoint_every, key, ocp.CheckpointManager(directory, options=options))

    def restore(self, state, total) -> Restored | None:
        """The newest checkpoint placed like ``state`` and ``total`` (templates), or None when there is none.

        Raises ValueError when the checkpoint belongs to another problem, settings or seed.
        """
        import orbax.checkpoint as ocp

        step = self.manager.latest_step()
        if step is None:
            return None
        meta = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        if meta["fingerprint"] != self.key:
            raise ValueError(
                f"SMMConfig.checkpoint_dir={self.directory!r} holds a checkpoint of another fit (its problem, "
                "settings or seed differ): remove it or choose another directory"
            )
        template = {"state": _abstract(state), "total": _abstract(total)}
        arrays = self.manager.restore(step, args=ocp.args.Composite(arrays=ocp.args.StandardRestore(template)))["arrays"]
        unflatten = lambda like, leaves: jax.tree.unflatten(jax.tree.structure(like), [leaves[k] for k in sorted(leaves)])
        return Restored(
            unflatten(state, arrays["state"]),
            unflatten(total, arrays["total"]),
            Position(*meta["position"]),
            {k: list(v) for k, v in meta["history"].items()},
            list(meta["chunk_times"]),
        )

    def save(self, state, total, position: Position, history: dict, chunk_times: list, end_of_phase: bool) -> bool:
        """Write a checkpoint every ``every`` chunks and at the end of a phase; True if one was written.

        Returns once the files are written (``state`` may then be donated to the next chunk).
        """
        import orbax.checkpoint as ocp

        step = position.search_chunks + position.average_chunks
        if not (end_of_phase or step % self.every == 0):
            return False
        meta = {"fingerprint": self.key, "position": list(position), "history": {k: list(v) for k, v in history.items()},
                "chunk_times": list(chunk_times)}
        arrays = {"state": _leaves(state), "total": _leaves(total)}
        return bool(self.manager.save(step, args=ocp.args.Composite(arrays=ocp.args.StandardSave(arrays),
                                                                    meta=ocp.args.JsonSave(meta)), force=True))

    def close(self) -> None:
        """Wait for any write in flight, then release the manager."""
        self.manager.wait_until_finished()
        self.manager.close()
