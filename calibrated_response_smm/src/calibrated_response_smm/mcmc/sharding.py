"""Chains split across local devices: each device sweeps its share of the chains.

Persistent chains are independent given the factor tables, so a sweep parallelises
over chains with no communication; only the Rao-Blackwellised sums, which are chain
averages, are averaged across devices once per step. :func:`shard_kernel` wraps the
one-device Gibbs kernel (:mod:`.gibbs`) so: each device runs its step on its share.
A chain's random stream is keyed by its global index (:class:`.stream.ChainSpan`), so
the draws are the same however many devices (or processes) the chains are split across.

On a CPU, XLA runs one device's program on about one core (its intra-op threads
mostly wait on each other in a sweep's many small steps), so the way to put every
core to work is one CPU device per core: :func:`use_cpu_cores` asks JAX for that,
which it can only do before its first computation. The smm backend calls it when it
compiles its first problem; on a GPU host the chains are split across the GPUs instead.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from .stream import ChainSpan, check_stream_capacity

if TYPE_CHECKING:
    from .gibbs import GibbsKernel

CHAIN_AXIS = "chains"
# Below this many site updates per sweep (variables x chains) one device is faster:
# the split's fixed costs outweigh the shorter sweep.
MIN_SHARDED_SITES = 1 << 20
# Above this many multipliers one device is better: the dual step and its state are
# replicated on every device, so the split multiplies their memory and does not
# shorten them (100k factors of 10 x 10 cells: 1.8 times the memory, no faster).
MAX_SHARDED_MULTIPLIERS = 1 << 20


def use_cpu_cores(n: int | None = None) -> bool:
    """Ask JAX for one CPU device per core (``n``: that many); True if it took effect.

    Leaves JAX alone, returning False, when its backends already run (the device
    count is fixed then) or when the user chose a count (``jax_num_cpu_devices`` or
    ``--xla_force_host_platform_device_count`` in ``XLA_FLAGS``).
    """
    if jax.config.jax_num_cpu_devices != -1 or "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return False
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        jax.config.update("jax_num_cpu_devices", int(n or cores))
    except RuntimeError:  # backends already initialised
        return False
    return True


def chain_devices(requested: int | None, num_chains: int, n_vars: int, n_multipliers: int = 0) -> int:
    """Devices to split ``num_chains`` chains across.

    ``requested`` None: every local device when the sweep dominates an iteration
    (``n_vars * num_chains >= MIN_SHARDED_SITES`` and ``n_multipliers <=
    MAX_SHARDED_MULTIPLIERS``), lowered to a divisor of ``num_chains``; else exactly
    ``requested``, which must divide ``num_chains`` and not exceed the local devices.
    Raises ValueError where the chains' random streams would overflow
    (:func:`.stream.check_stream_capacity`).
    """
    check_stream_capacity(n_vars, num_chains)
    available = jax.device_count()  # every process's devices (see .distributed)
    if jax.process_count() > 1:  # every process holds a share of the chains
        requested = available if requested is None else requested
        if requested != available:
            raise ValueError(f"SMMConfig.devices={requested}: with {jax.process_count()} processes the chains are "
                             f"split across all {available} devices")
    if requested is None:
        gains = n_vars * num_chains >= MIN_SHARDED_SITES and n_multipliers <= MAX_SHARDED_MULTIPLIERS
        n = available if gains else 1
        while num_chains % n:
            n -= 1
        return n
    if requested > available:
        raise ValueError(
            f"SMMConfig.devices={requested}: only {available} local {jax.default_backend()} device(s); on a CPU, "
            "call calibrated_response_smm.use_cpu_cores() (or set jax_num_cpu_devices) before JAX starts"
        )
    if num_chains % requested:
        raise ValueError(f"SMMConfig.devices={requested} must divide num_chains={num_chains}")
    return requested


def _mesh(n_devices: int) -> Mesh:
    # jax.devices(): every process's devices, in process order (one process: the local ones)
    return Mesh(np.array(jax.devices()[:n_devices]), (CHAIN_AXIS,))


def chain_sharding(n_devices: int):
    """Placement of chain states ``[V + 1, C]`` split by chains (None for one device)."""
    if n_devices == 1:
        return None
    return jax.sharding.NamedSharding(_mesh(n_devices), PartitionSpec(None, CHAIN_AXIS))


def shard_kernel(kernel: GibbsKernel, n_devices: int, *, average: bool = True) -> GibbsKernel:
    """``kernel`` with the chains split across ``n_devices`` devices: each device steps its share.

    ``kernel.step(state, rows, span)`` must step the chains ``span`` (global indices)
    held by the columns of ``state.x``; the wrapped ``step(state, rows)`` gives each
    device its columns and their span, the rest of the state and ``rows`` whole, and
    with ``average`` averages the step's info (chain averages) across devices, as one
    device would have computed it. ``init`` leaves the chains split, as every step does.
    """
    split, whole = PartitionSpec(None, CHAIN_AXIS), PartitionSpec()

    def init(seed, num_chains: int):
        state = kernel.init(seed, num_chains)
        return state._replace(x=jax.lax.with_sharding_constraint(state.x, chain_sharding(n_devices)))

    def local(state, rows):
        C = state.x.shape[1]
        shard = jax.lax.axis_index(CHAIN_AXIS).astype(jnp.uint32)
        state, info = kernel.step(state, rows, ChainSpan(shard * C, C * n_devices))  # this device's chains, globally
        return state, jax.lax.pmean(info, CHAIN_AXIS) if average else info

    def step(state, rows):
        specs = jax.tree.map(lambda _: whole, state)._replace(x=split)
        return jax.shard_map(
            local,
            mesh=_mesh(n_devices),
            in_specs=(specs, whole),
            out_specs=(specs, whole),
            check_vma=False,  # the sweep's lax.cond mixes per-device and shared values
        )(state, rows)

    return kernel._replace(init=init, step=step)
