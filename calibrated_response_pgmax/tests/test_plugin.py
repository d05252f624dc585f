"""The entry point, the config and the hook implementations."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import numpy as np
import pytest

from calibrated_response_pgmax import plugin
from calibrated_response_pgmax.config import PgmaxConfig


def test_entry_point_names_the_plugin_module():
    (point,) = [ep for ep in entry_points(group="calibrated_response.backends") if ep.name == "pgmax"]
    assert point.value == "calibrated_response_pgmax.plugin"


def test_plugin_module_is_light_to_import():
    code = "import sys, calibrated_response_pgmax.plugin; print('jax' in sys.modules, 'pgmax' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.split() == ["False", "False"]


def test_make_config_defaults_options_and_errors():
    assert plugin.make_config(None) == PgmaxConfig()
    config = plugin.make_config({"damping": 0.2, "bp_iterations": 3, "max_bins": 11})
    assert (config.damping, config.bp_iterations, config.max_bins) == (0.2, 3, 11)
    with pytest.raises(ValueError, match="no_such_option"):
        plugin.make_config({"no_such_option": 1})
    with pytest.raises(ValueError, match="damping"):
        PgmaxConfig(damping=1.0)
    with pytest.raises(ValueError, match="bp_iterations"):
        PgmaxConfig(bp_iterations=0)


def test_hooks_fit_a_problem_and_report_progress(build):
    a, b = build.binary("a"), build.binary("b")
    problem = build.ConstraintSet([a, b], [build.table_constraint("p_ab", [0, 1], [[0, 0], [0, 1]], 0.2)])
    config = plugin.make_config({"bp_iterations": 10})
    calls = []
    fitted = plugin.fit(plugin.compile_constraints(problem, config), config, lambda *args: calls.append(args))
    marginals = plugin.marginals(fitted)
    assert calls and calls[-1][1] == config.max_iterations and "max_residual" in calls[-1][2]
    # A single pairwise factor is a tree: exact. With P(a and b) = 0.2 and nothing else,
    # max entropy gives P(a) = 0.2 + (1 - 0.2) / 3 (up to the l2 compromise, < 1e-3).
    assert marginals["a"][1] == pytest.approx(0.2 + 0.8 / 3, abs=1e-3)


def test_no_constraints_gives_uniform_marginals(build):
    problem = build.ConstraintSet([build.binary("a"), build.continuous("x", 0, 1, 3)], [])
    fitted = plugin.fit(plugin.compile_constraints(problem, PgmaxConfig()), PgmaxConfig(), None)
    assert fitted.converged and fitted.n_iterations == 0
    np.testing.assert_allclose(fitted.marginals["x"], 1 / 3)
