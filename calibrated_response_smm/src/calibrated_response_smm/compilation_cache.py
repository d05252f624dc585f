"""JAX's persistent compilation cache, so a fresh process reuses the programs compiled before.

A pipeline that calls the CLI once per question starts a new process each time, and
compiling the sweep and its observers is most of a small fit's cold time (eight 5-variable
shared cases: 8.9 s median in a fresh process, 4.7 s once the cache holds their programs).
Sizes are padded to powers of two, so problems of similar size share programs. The cache
is JAX's own (keyed by the program, JAX and XLA versions and the device), and the user's
setting of it wins: a cache directory JAX was given (``JAX_COMPILATION_CACHE_DIR`` or
``jax.config``) is left as it is.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

#: ``SMMConfig.compilation_cache`` value that picks :func:`default_directory`.
AUTO = "auto"
#: ``SMMConfig.compilation_cache`` values that leave JAX's setting alone.
OFF = ("off", "none", "")
#: Programs compiled faster than this get no disk entry. JAX's default, 1 s, leaves out most of a
#: small fit's programs (65 of them compile in 0.8 s in all); an entry loads in a few ms.
MIN_COMPILE_SECONDS = 0.0
#: Environment variable naming the directory ``auto`` uses.
ENVIRONMENT = "CALIBRATED_RESPONSE_CACHE"


def default_directory() -> Path:
    """``$CALIBRATED_RESPONSE_CACHE``, else ``$XDG_CACHE_HOME/calibrated_response/jax`` (``~/.cache`` by default)."""
    if os.environ.get(ENVIRONMENT):
        return Path(os.environ[ENVIRONMENT]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "calibrated_response" / "jax"


def use_compilation_cache(setting: str | None) -> str | None:
    """Point JAX's persistent cache at ``setting`` (see ``SMMConfig.compilation_cache``); the directory in use.

    Process-wide, as JAX's setting is. A directory that cannot be created leaves the
    cache off with a warning: a fit never fails for want of a cache.
    """
    import jax

    current = jax.config.jax_compilation_cache_dir
    if setting is None or setting.strip().lower() in OFF or current:
        return current or None
    path = default_directory() if setting == AUTO else Path(setting).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        warnings.warn(f"smm: compilation cache off: cannot create {str(path)!r} ({error})", RuntimeWarning,
                      stacklevel=2)
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return str(path)


#: Compiled programs in memory are released once the process's memory maps pass this fraction of
#: the kernel's limit (``vm.max_map_count``, 65,530 by default on Linux).
MAP_LIMIT_FRACTION = 0.5


def _memory_maps() -> tuple[int, int] | None:
    """This process's memory maps and the kernel's limit on them (None where not readable: not Linux)."""
    try:
        limit = int(Path("/proc/sys/vm/max_map_count").read_text(encoding="ascii"))
        with open("/proc/self/maps", encoding="ascii", errors="replace") as maps:
            return sum(1 for _ in maps), limit
    except (OSError, ValueError):
        return None


def release_compiled_programs(fraction: float = MAP_LIMIT_FRACTION) -> bool:
    """Clear JAX's in-memory caches when this process's memory maps near the kernel's limit; whether it did.

    Each compiled XLA:CPU program keeps memory maps for its code; a problem of a new shape
    compiles about 70 programs, about 1,100 maps (6- to 9-variable stress problems), so a
    process fitting distinct problems one after another passed Linux's default limit of
    65,530 maps after 59 of them, and LLVM's next compilation failed ("Cannot allocate
    memory"). Programs cleared here are compiled again when needed, from the persistent
    cache where it is on.
    """
    usage = _memory_maps()
    if usage is None or usage[0] < fraction * usage[1]:
        return False
    import gc

    import jax

    jax.clear_caches()
    gc.collect()
    return True
