"""Every shared real case within the size guard fits and converges; the one above it is refused.

The ``real_cases`` fixture (repository conftest) gives the 240 shared cases where present, else the 12 shipped in ``benchmarks/cases/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from calibrated_response_plugins import DistributionBuilder, compile_problem, load_problem

from calibrated_response_maxent import plugin
from calibrated_response_maxent.model import count_joint_states

FIVE_VARIABLE_CASE = "fb_full_1.json"  # 2 binaries and 3 continuous variables: 37,044 states


def compiled_case(path: Path):
    problem = load_problem(path)
    config = plugin.make_config(None)
    return compile_problem(problem.variables, problem.estimates, config), config


def test_every_case_within_the_size_guard_fits_and_converges(real_cases):
    fitted = 0
    for path in real_cases:
        constraints, config = compiled_case(path)
        if count_joint_states(constraints.n_states) > config.max_states:
            continue
        result = plugin.fit(plugin.compile_constraints(constraints, config), config, None)
        assert result.converged, (path.name, result.diagnostics)
        residual = result.feature_means - constraints.targets
        equality = np.array([relation == "eq" for relation in constraints.relations], dtype=bool)
        # Stationarity E[g] - c = -s^2 lambda holds to the gradient tolerance gtol = 1e-8;
        # 1e-6 is the contract's tolerance.
        np.testing.assert_allclose(
            residual[equality], -(constraints.s2 * result.lambdas)[equality], atol=1e-6, err_msg=path.name
        )
        for name, probabilities in result.marginals.items():
            # Marginals are sums of a normalised joint: 1 up to float64 rounding.
            assert abs(probabilities.sum() - 1.0) < 1e-12, (path.name, name)
        fitted += 1
    assert fitted >= len(real_cases) - 1  # only the 130-million-state case is too large


def test_the_case_above_the_size_guard_is_refused_with_a_pointer_to_smm(real_cases):
    too_large = [path for path in real_cases
                 if count_joint_states(compiled_case(path)[0].n_states) > plugin.make_config(None).max_states]
    assert too_large, "expected at least one case above the default size guard"
    problem = load_problem(too_large[0])
    builder = DistributionBuilder(problem.variables, problem.estimates, backend="maxent")
    with pytest.raises(ValueError, match=r"joint states.*backend=\"smm\""):
        builder.build(target_variable=problem.target_variable, progress=False)


def test_five_variable_case_solves_in_a_few_dual_evaluations(real_cases):
    """The work, not the wall clock (which depends on the machine's load): its time is
    measured by ``benchmarks/bench_maxent_cases.py``, ~0.03 s on an idle core."""
    constraints, config = compiled_case(real_cases[0].parent / FIVE_VARIABLE_CASE)
    model = plugin.compile_constraints(constraints, config)
    assert count_joint_states(constraints.n_states) == 37_044

    result = plugin.fit(model, config, None)

    assert result.converged
    # 9 constraints: L-BFGS-B converges in 17 iterations (18 evaluations of the dual on the
    # joint) with no Newton step; 40 allows other BLAS roundings, not a slower algorithm.
    assert result.diagnostics["lbfgsb_evaluations"] + result.diagnostics["newton_steps"] <= 40
