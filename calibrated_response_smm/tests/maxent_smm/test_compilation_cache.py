"""JAX's persistent compilation cache: on by default, in the directory asked for, never over the user's own."""

from __future__ import annotations

import os
import subprocess
import sys
import jax
import pytest
from calibrated_response_smm import compilation_cache
from calibrated_response_smm.compilation_cache import use_compilation_cache

FIT = (
    "import jax; from calibrated_response_plugins import DistributionBuilder;"
    "from calibrated_response_plugins.testing import CONFORMANCE_PROBLEM as P;"
    "b = DistributionBuilder(P['variables'], P['estimates'], backend='smm', config={OPTIONS});"
    "b.build(progress=False); print(jax.config.jax_compilation_cache_dir)"
)
SMALL = "'num_chains': 64, 'num_iterations': 10, 'averaging_iterations': 0, 'final_sweeps': 8"


def _python(code: str, **env: str) -> list[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("JAX_COMPILATION_CACHE_DIR",)}
    environment.update(env)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=environment)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split()


def test_a_fit_fills_the_default_cache(tmp_path):
    cache = tmp_path / "cache"
    out = _python(FIT.replace("{OPTIONS}", "{" + SMALL + "}"), CALIBRATED_RESPONSE_CACHE=str(cache))
    assert out == [str(cache)]
    assert any(cache.iterdir())  # the sweep's programs compile for longer than the 0.2 s threshold


def test_a_cache_jax_was_given_wins(tmp_path):
    mine, asked = tmp_path / "mine", tmp_path / "asked"
    options = "{" + SMALL + f", 'compilation_cache': {str(asked)!r}" + "}"
    out = _python(FIT.replace("{OPTIONS}", options), JAX_COMPILATION_CACHE_DIR=str(mine))
    assert out == [str(mine)]
    assert not asked.exists()


def test_off_changes_nothing():
    before = jax.config.jax_compilation_cache_dir
    assert use_compilation_cache("off") == (before or None)
    assert use_compilation_cache(None) == (before or None)
    assert jax.config.jax_compilation_cache_dir == before


def test_a_directory_that_cannot_be_made_leaves_the_cache_off_with_a_warning(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = (
        "import warnings, jax; from calibrated_response_smm.compilation_cache import use_compilation_cache as use;"
        "warnings.simplefilter('always');"
        "caught = warnings.catch_warnings(record=True); w = caught.__enter__();"
        f"r = use({str(blocker / 'cache')!r}); print(r, len(w), jax.config.jax_compilation_cache_dir,"
        f"'cannot create' in str(w[0].message) and {str(blocker)!r} in str(w[0].message))"
    )
    assert _python(code) == ["None", "1", "None", "True"]


@pytest.mark.parametrize("usage, cleared", [((40_000, 65_530), True), ((1_000, 65_530), False), (None, False)])
def test_compiled_programs_are_released_near_the_map_limit(monkeypatch, usage, cleared):
    calls = []
    monkeypatch.setattr(compilation_cache, "_memory_maps", lambda: usage)
    monkeypatch.setattr(jax, "clear_caches", lambda: calls.append(True))
    assert compilation_cache.release_compiled_programs() is cleared
    assert calls == ([True] if cleared else [])


def test_the_map_count_is_read_where_the_kernel_shows_it():
    usage = compilation_cache._memory_maps()
    if usage is None:
        pytest.skip("no /proc/self/maps here (not Linux)")
    count, limit = usage
    assert 0 < count < limit
