"""The one place where PGMax is adapted to the installed JAX and imported.

PGMax 0.6.1 reads ``jax.lib.xla_bridge.get_backend().platform`` when an
inferer is built; JAX removed ``jax.lib.xla_bridge`` (0.4.x deprecation, later
removal). :func:`ensure_xla_bridge` restores just that attribute, pointing at
``jax.extend.backend.get_backend``, and :func:`import_pgmax` applies it before
PGMax is imported.
"""

from __future__ import annotations

import types

PGMAX_INSTALL_HINT = "pip install pgmax==0.6.1 --no-deps numba"


def ensure_xla_bridge() -> bool:
    """Give ``jax.lib`` an ``xla_bridge.get_backend`` if it lacks one.

    Returns True when the shim was installed, False when JAX already has it.
    """
    import jax
    import jax.lib

    if hasattr(jax.lib, "xla_bridge"):
        return False
    from jax.extend import backend

    jax.lib.xla_bridge = types.SimpleNamespace(get_backend=backend.get_backend)
    return True


def import_pgmax() -> types.SimpleNamespace:
    """Import the PGMax modules this backend uses, after applying the shim.

    Raises ImportError naming the install command when PGMax is missing.
    """
    ensure_xla_bridge()
    try:
        from pgmax import fgraph, fgroup, infer, vgroup
        from pgmax.factor import EnumFactor
    except ImportError as error:
        raise ImportError(
            f"the pgmax backend needs PGMax 0.6.1 and numba: {PGMAX_INSTALL_HINT} ({error})"
        ) from error
    return types.SimpleNamespace(
        fgraph=fgraph, fgroup=fgroup, infer=infer, vgroup=vgroup, EnumFactor=EnumFactor
    )
