"""Fixtures of the cross-backend benchmarks: backends, shared cases, synthetic problems, device.

Every test that takes a ``backend`` argument is parametrised over the backends
:func:`~calibrated_response_plugins.installed_backends` lists, so a newly
installed backend is benchmarked without any change here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from calibrated_response_plugins.registry import installed_backends  # noqa: E402

from harness import CASES_ENV, cases_directory  # noqa: E402,F401  (cases_directory: used by the smoke test)
from synthetic import SyntheticProblem, synthetic_constraints, synthetic_problem  # noqa: E402

if "smm" in installed_backends():  # one JAX CPU device per core for smm's sweeps, as its README asks
    from calibrated_response_smm import use_cpu_cores

    use_cpu_cores()


def pytest_generate_tests(metafunc):
    """Parametrise every ``backend`` argument over the installed backends."""
    if "backend" in metafunc.fixturenames:
        backends = sorted(installed_backends())
        metafunc.parametrize("backend", backends, ids=backends)


@pytest.fixture(scope="session")
def cases_dir() -> Path:
    """The case folder (:func:`harness.cases_directory`); the test is skipped when it has no case."""
    directory = cases_directory()
    if not directory.is_dir() or not any(directory.glob("*.json")):
        pytest.skip(f"no cases at {directory} (set {CASES_ENV} to a folder of case JSON files)")
    return directory


class SyntheticCache:
    """Synthetic problems and their compiled constraint sets, built once per session and size."""

    def __init__(self):
        self._problems: dict[int, SyntheticProblem] = {}
        self._constraints: dict[int, object] = {}

    def problem(self, n_variables: int) -> SyntheticProblem:
        if n_variables not in self._problems:
            self._problems[n_variables] = synthetic_problem(n_variables)
        return self._problems[n_variables]

    def constraints(self, n_variables: int):
        if n_variables not in self._constraints:
            self._constraints[n_variables] = synthetic_constraints(self.problem(n_variables))
        return self._constraints[n_variables]


@pytest.fixture(scope="session")
def synthetic_cache() -> SyntheticCache:
    """Session-wide cache of synthetic problems (generation and compilation are not timed)."""
    return SyntheticCache()
