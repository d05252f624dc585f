"""The entry point is registered and light: importing it does not import JAX."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

from calibrated_response_plugins.registry import installed_backends


def test_entry_point_is_registered():
    names = {ep.name: ep.value for ep in entry_points(group="calibrated_response.backends")}
    assert names.get("smm") == "calibrated_response_smm.plugin"
    assert "smm" in installed_backends()


def test_plugin_import_does_not_import_jax():
    code = "import sys, calibrated_response_smm.plugin; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_make_config_validates():
    import pytest
    from calibrated_response_smm import plugin
    from calibrated_response_smm.config import SMMConfig

    assert plugin.make_config(options=None) == SMMConfig()
    assert plugin.make_config(options={"num_chains": 64}).num_chains == 64
    with pytest.raises(ValueError, match="optimizer"):
        plugin.make_config(options={"optimizer": "lbfgs"})
    with pytest.raises(ValueError, match="unknown"):
        plugin.make_config(options={"chains": 3})
