"""A deterministic sample of the shared real cases compiles and fits without error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from calibrated_response_plugins.compiler import compile_problem
from calibrated_response_plugins.io import load_problem
from calibrated_response_pgmax.config import PgmaxConfig
from calibrated_response_pgmax.model import compile_model, fit_model

CASES = Path(__file__).resolve().parents[3] / "shared" / "cases"
SAMPLE_STRIDE = 48  # every 48th case by sorted name: 5 of the 240 shared cases


def sample_cases() -> list[Path]:
    return sorted(CASES.glob("*.json"))[::SAMPLE_STRIDE] if CASES.is_dir() else []


@pytest.mark.skipif(not CASES.is_dir(), reason=f"no shared cases folder at {CASES}")
@pytest.mark.parametrize("path", sample_cases(), ids=lambda p: p.stem)
def test_case_fits(path):
    problem = load_problem(path)
    config = PgmaxConfig()
    constraints = compile_problem(problem.variables, problem.estimates, config)
    result = fit_model(compile_model(constraints), config)
    assert np.all(np.isfinite(result.lambdas)) and np.all(np.isfinite(result.report_means))
    for name, probabilities in result.marginals.items():
        assert np.all(probabilities >= 0) and probabilities.sum() == pytest.approx(1.0, abs=1e-9), name
