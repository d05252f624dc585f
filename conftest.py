"""Repository-wide pytest setup.

Each backend's source folder (``calibrated_response_smm/`` ...) has the same name
as the package it installs. Pytest's importlib mode would import that folder as
an empty namespace package when it collects the backend's tests, hiding the
installed package; importing the installed packages first keeps the real ones.
"""

import importlib
import importlib.util
from importlib.metadata import entry_points
from pathlib import Path

import pytest

for entry_point in entry_points(group="calibrated_response.backends"):
    importlib.import_module(entry_point.value.split(".", 1)[0])

REPO = Path(__file__).resolve().parent


def _benchmark_harness():
    """``benchmarks/harness.py``, the one place that says where the real cases are."""
    spec = importlib.util.spec_from_file_location("benchmarks_harness", REPO / "benchmarks" / "harness.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


harness = _benchmark_harness()
SHARED_CASES = harness.SHARED_CASES


@pytest.fixture(scope="session")
def shared_cases() -> list[Path]:
    """The 240 real elicited problems; absent outside the project's own machines."""
    if not SHARED_CASES.is_dir():
        pytest.skip("../shared/cases is not available in this checkout")
    return sorted(SHARED_CASES.glob("*.json"))


@pytest.fixture(scope="session")
def real_cases() -> list[Path]:
    """Real elicited problems: the 240 shared ones where present, else the 12 in ``benchmarks/cases/``."""
    return harness.case_files()
