"""The sampler's counter-based random stream: one uniform per site, keyed by sweep, variable and chain.

A hash of a few integer ops per site, far cheaper on CPU than threefry. A stream is
keyed by an integer seed (:func:`seed_words`); each sweep derives two words from the
seed and its sweep number (:func:`sweep_words`). A site's counter is ``variable row *
total chains + global chain index``, so the draw of chain ``c`` at variable ``v`` in a
sweep depends on the seed, the sweep, ``v`` and ``c`` only: not on how the chains are
split across devices or processes, nor on the block a variable sits in. Counters are
unique while ``(V + 1) * chains < 2**32`` (:func:`check_stream_capacity`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

STREAM_CAPACITY = 1 << 32  # distinct site counters of one sweep


class ChainSpan(NamedTuple):
    """Which chains a device holds: global indices ``offset .. offset + C - 1`` of ``total``."""

    offset: jax.Array | int  # u32: global index of the device's first chain
    total: jax.Array | int  # u32: chains across every device and process


def whole_span(num_chains: int) -> ChainSpan:
    """The span of a device holding all ``num_chains`` chains."""
    return ChainSpan(0, num_chains)


def check_stream_capacity(n_rows: int, num_chains: int) -> None:
    """Raise ValueError where ``n_rows`` chain rows x ``num_chains`` chains overflow the site counter."""
    if n_rows * num_chains >= STREAM_CAPACITY:
        raise ValueError(
            f"SMMConfig.num_chains={num_chains} with {n_rows} chain rows needs {n_rows * num_chains} random "
            f"streams per sweep, more than the sampler's 2**32: use fewer chains"
        )


def seed_words(seed: int) -> np.ndarray:
    """The uint32[2] stream seed of an integer seed."""
    seed = int(seed) & 0xFFFFFFFFFFFFFFFF
    return np.array([seed & 0xFFFFFFFF, (seed >> 32) ^ 0x9E3779B9], dtype=np.uint32)


def _fmix32(h):
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x7FEB352D)
    h = h ^ (h >> 15)
    h = h * jnp.uint32(0x846CA68B)
    return h ^ (h >> 16)


def sweep_words(seed, counter):
    """Two uint32 words for sweep number ``counter`` of a stream keyed by ``seed`` (uint32[2])."""
    c = jnp.asarray(counter, jnp.uint32)
    return jnp.stack([_fmix32(seed[0] ^ _fmix32(2 * c + 1)), _fmix32(seed[1] + _fmix32(2 * c + 2))])


def _uniforms(words, counter):
    """Uniforms in [0, 1) from uint32 counters, keyed by two uint32 ``words`` (two hash rounds)."""
    h = _fmix32(_fmix32(counter ^ words[0]) + words[1])
    return (h >> 8).astype(jnp.float32) * jnp.float32(1.0 / (1 << 24))


def site_uniforms(words, counter_offset, shape):
    """Uniforms in [0, 1) for ``shape`` sites numbered from ``counter_offset`` in row-major order."""
    counter = jax.lax.iota(jnp.uint32, int(np.prod(shape))).reshape(shape) + counter_offset
    return _uniforms(words, counter)


def chain_uniforms(words, rows, span: ChainSpan, n_chains: int):
    """Uniforms ``[len(rows), n_chains]`` of chain rows ``rows`` for the chains of ``span``.

    The counter of row ``v`` and global chain ``c`` is ``v * span.total + c``: the
    same whichever device holds the chain. Costs one add per site more than
    numbered sites (the row product is per row).
    """
    total = jnp.asarray(span.total, jnp.uint32)
    first = rows.astype(jnp.uint32) * total + jnp.asarray(span.offset, jnp.uint32)
    return _uniforms(words, first[:, None] + jax.lax.iota(jnp.uint32, n_chains)[None, :])
