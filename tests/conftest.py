from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_CASES = REPO.parent / "shared" / "cases"


@pytest.fixture(scope="session")
def shared_cases() -> list[Path]:
    """The 240 real elicited problems; absent outside the project's own machines."""
    if not SHARED_CASES.is_dir():
        pytest.skip("../shared/cases is not available in this checkout")
    return sorted(SHARED_CASES.glob("*.json"))
