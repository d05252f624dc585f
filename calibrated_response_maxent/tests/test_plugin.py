"""The ``maxent`` entry point: config, size guard and the hooks driven through pluggy."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import attrs
import numpy as np
import pluggy
import pytest
from calibrated_response_plugins import hookspecs
from calibrated_response_plugins.config import CoreConfig
from calibrated_response_plugins.constraints import FitResult

from calibrated_response_maxent import plugin
from calibrated_response_maxent.config import MaxentConfig
from calibrated_response_maxent.model import DenseModel


@pytest.fixture
def plugin_manager():
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(plugin, name="maxent")
    try:
        yield manager
    finally:
        manager.unregister(name="maxent")


def test_entry_point_names_the_plugin_module():
    found = {ep.name: ep.value for ep in entry_points(group="calibrated_response.backends")}
    assert found.get("maxent") == "calibrated_response_maxent.plugin"


def test_plugin_module_imports_without_scipy_or_the_solver():
    code = (
        "import sys, calibrated_response_maxent.plugin; "
        "print(sorted(m for m in ('scipy', 'calibrated_response_maxent.solver') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_make_config_defaults_and_options(plugin_manager):
    default = plugin_manager.hook.make_config(options=None)
    tuned = plugin_manager.hook.make_config(options={"max_states": 1000, "gtol": 1e-10, "max_bins": 11})

    assert isinstance(default, MaxentConfig) and isinstance(default, CoreConfig)
    assert (default.max_states, default.gtol, default.max_bins) == (4_000_000, 1e-8, 21)
    assert (tuned.max_states, tuned.gtol, tuned.max_bins) == (1000, 1e-10, 11)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        default.gtol = 1.0


@pytest.mark.parametrize(
    "options", [{"max_states": 0}, {"gtol": 0.0}, {"gtol": float("nan")}, {"max_iterations": 2.5}, {"bogus": 1}]
)
def test_make_config_rejects_bad_options(plugin_manager, options):
    with pytest.raises(ValueError, match=next(iter(options))):
        plugin_manager.hook.make_config(options=options)


def test_size_guard_names_the_joint_size_and_the_smm_backend(plugin_manager, build):
    domains = [build.continuous(f"x{i}", 0, 1) for i in range(5)]  # 21**5 = 4,084,101 states
    problem = build.ConstraintSet(domains, [])
    config = plugin_manager.hook.make_config(options=None)

    with pytest.raises(ValueError, match=r"4,084,101 joint states.*backend=\"smm\""):
        plugin_manager.hook.compile_constraints(problem=problem, config=config)


def test_size_guard_follows_max_states(plugin_manager, mixed_problem):
    small = plugin_manager.hook.make_config(options={"max_states": 37_043})
    exact = plugin_manager.hook.make_config(options={"max_states": 37_044})

    with pytest.raises(ValueError, match="37,044 joint states"):
        plugin_manager.hook.compile_constraints(problem=mixed_problem, config=small)
    assert isinstance(plugin_manager.hook.compile_constraints(problem=mixed_problem, config=exact), DenseModel)


def test_hooks_fit_a_problem_end_to_end(plugin_manager, mixed_problem):
    config = plugin_manager.hook.make_config(options=None)
    model = plugin_manager.hook.compile_constraints(problem=mixed_problem, config=config)
    reports = []

    fitted = plugin_manager.hook.fit(model=model, config=config, progress=lambda *args: reports.append(args),
                                     provisional=False)
    marginals = plugin_manager.hook.marginals(fitted=fitted)

    assert isinstance(fitted, FitResult) and fitted.converged
    assert list(marginals) == ["a", "b", "x", "y", "z"]
    assert [len(p) for p in marginals.values()] == [2, 2, 21, 21, 21]
    assert reports and all(total == config.max_iterations for _, total, _ in reports)
    assert {"objective", "projected_gradient"} <= set(reports[-1][2])


def test_a_problem_without_constraints_is_uniform(plugin_manager, build):
    problem = build.ConstraintSet([build.binary("a"), build.continuous("x", 0, 1, n_bins=4)], [])
    config = plugin_manager.hook.make_config(options=None)

    fitted = plugin_manager.hook.fit(
        model=plugin_manager.hook.compile_constraints(problem=problem, config=config), config=config, progress=None,
        provisional=False,
    )

    assert fitted.converged and fitted.n_factors == 0
    # The joint is exp(0) normalised: exactly uniform up to float64 rounding.
    np.testing.assert_allclose(fitted.marginals["x"], 0.25, atol=1e-15)
