"""A deterministic sample of the real cases compiles and fits without error."""

from __future__ import annotations

import numpy as np
import pytest

from calibrated_response_plugins.compiler import compile_problem
from calibrated_response_plugins.io import load_problem
from calibrated_response_pgmax.config import PgmaxConfig
from calibrated_response_pgmax.model import compile_model, fit_model

SAMPLE = 5  # evenly spaced by sorted name: every 48th of the 240 shared cases


def sample(cases):
    return cases[:: max(len(cases) // SAMPLE, 1)][:SAMPLE]


def test_case_fits(real_cases):
    for path in sample(real_cases):
        fit_and_check(path)


def fit_and_check(path):
    problem = load_problem(path)
    config = PgmaxConfig()
    constraints = compile_problem(problem.variables, problem.estimates, config)
    result = fit_model(compile_model(constraints), config)
    assert np.all(np.isfinite(result.lambdas)) and np.all(np.isfinite(result.report_means))
    for name, probabilities in result.marginals.items():
        assert np.all(probabilities >= 0) and probabilities.sum() == pytest.approx(1.0, abs=1e-9), name
