"""Shared fixtures: small hand-built constraint sets (builders and oracle: the core's ``testing``)."""

from __future__ import annotations

import pytest
from calibrated_response_plugins.constraints import ConstraintSet
from calibrated_response_plugins.testing import small_binary_problem as make_small_binary_problem


@pytest.fixture
def small_binary_problem() -> ConstraintSet:
    return make_small_binary_problem()
