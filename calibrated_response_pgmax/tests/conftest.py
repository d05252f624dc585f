"""Hand-made constraint sets and the exact reference, from the core's shared test helpers.

Exposed to the tests as the ``build`` and ``exact`` fixtures, so they need
neither the core compiler nor the maxent backend.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from calibrated_response_plugins import testing
from calibrated_response_plugins.constraints import ConstraintSet


@pytest.fixture(scope="session")
def build():
    return SimpleNamespace(binary=testing.binary_domain, continuous=testing.continuous_domain,
                           table_constraint=testing.table_constraint,
                           conditional_constraint=testing.conditional_constraint, ConstraintSet=ConstraintSet)


@pytest.fixture(scope="session")
def exact():
    return SimpleNamespace(fit=testing.exact_fit, max_marginal_error=testing.max_marginal_error)
