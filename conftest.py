"""Repository-wide pytest setup.

Each backend's source folder (``calibrated_response_smm/`` ...) has the same name
as the package it installs. Pytest's importlib mode would import that folder as
an empty namespace package when it collects the backend's tests, hiding the
installed package; importing the installed packages first keeps the real ones.
"""

import importlib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

for entry_point in entry_points(group="calibrated_response.backends"):
    importlib.import_module(entry_point.value.split(".", 1)[0])

REPO = Path(__file__).resolve().parent
SHARED_CASES = REPO.parent / "shared" / "cases"


@pytest.fixture(scope="session")
def shared_cases() -> list[Path]:
    """The 240 real elicited problems; absent outside the project's own machines."""
    if not SHARED_CASES.is_dir():
        pytest.skip("../shared/cases is not available in this checkout")
    return sorted(SHARED_CASES.glob("*.json"))
