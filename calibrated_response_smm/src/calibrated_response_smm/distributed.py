"""Chains split across processes (several hosts) on JAX's own multi-process runtime.

Every process runs the same program: :func:`initialize` joins it to the others
(``jax.distributed.initialize``; on CPUs with gloo collectives), after which
``jax.devices()`` lists every process's devices and a fit splits its chains across
all of them. Each process sweeps its own chains; the Rao-Blackwellised moments and
the chains' feature statistics are averaged across processes by the same collectives
that average them across local devices, and every process holds the replicated
multipliers and the same answer. A chain's random stream is keyed by its global
index, so the answer equals the one-process fit's up to the order of floating-point
sums. Call :func:`initialize` before any other JAX computation.
"""

from __future__ import annotations

import jax


def initialize(coordinator_address: str, num_processes: int, process_id: int, *, local_devices: int | None = None,
               timeout_s: int = 300) -> None:
    """Join this process to a ``num_processes``-process run coordinated at ``coordinator_address`` (``host:port``).

    ``process_id`` is this process's rank (0 hosts the coordinator); ``local_devices``
    CPU devices per process (None: JAX's default, one). On CPUs the collectives go
    through gloo (``jax_cpu_collectives_implementation``).
    """
    if jax.config.jax_platforms in (None, "", "cpu") or str(jax.config.jax_platforms).startswith("cpu"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if local_devices is not None:
        jax.config.update("jax_num_cpu_devices", int(local_devices))
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id, initialization_timeout=timeout_s)


def shutdown() -> None:
    """Leave the multi-process run (every process calls it at the end)."""
    jax.distributed.shutdown()


def host_get(tree):
    """``jax.device_get`` that also fetches arrays split across processes (each process gets them whole).

    Replicated and process-local arrays come as ``jax.device_get`` returns them; an
    array with shards on other processes is gathered from all of them first.
    """

    def get(leaf):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            from jax.experimental import multihost_utils

            return multihost_utils.process_allgather(leaf, tiled=True)
        return jax.device_get(leaf)

    return jax.tree.map(get, tree)
