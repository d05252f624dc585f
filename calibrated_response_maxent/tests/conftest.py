"""Hand-made constraint sets from the core's shared test helpers (the compiler is not needed here)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from calibrated_response_plugins import testing
from calibrated_response_plugins.constraints import ConstraintSet


@pytest.fixture
def build():
    """The shared builders, for tests: ``build.continuous(...)``, ``build.constraint(...)``, ..."""

    return SimpleNamespace(
        continuous=testing.continuous_domain, binary=testing.binary_domain, above=testing.above,
        constraint=testing.table_constraint, ConstraintSet=ConstraintSet
    )


@pytest.fixture
def mixed_problem(build):
    """Two binaries and three continuous variables (37,044 joint states) with every feature
    form, scopes of arity 1 to 3, ``le``/``ge`` relations and two conflicting estimates."""
    a, b = build.binary("a"), build.binary("b")
    x, y, z = build.continuous("x", 0, 10), build.continuous("y", 0, 1), build.continuous("z", -5, 5)
    true = np.array([0.0, 1.0])
    always = np.ones(21)
    constraints = [
        build.constraint("p_x_gt_6", (2,), build.above(x, 6), 0.3),
        build.constraint("p_x_gt_6_again", (2,), build.above(x, 6), 0.5),
        build.constraint("e_x", (2,), x.rescale(x.values), 0.45),
        build.constraint("p_a", (0,), true, 0.7),
        build.constraint(
            "p_y_gt_half_given_a", (0, 3), np.outer(true, build.above(y, 0.5)) - 0.8 * np.outer(true, always), 0.0,
            numerator=np.outer(true, build.above(y, 0.5)), denominator=np.outer(true, always),
        ),
        build.constraint("e_z_given_b", (1, 4), np.outer(true, z.rescale(z.values) - 0.7), 0.0),
        build.constraint(
            "p_xyz", (2, 3, 4), np.einsum("i,j,k->ijk", build.above(x, 3), build.above(y, 0.2), build.above(z, 0)),
            0.2, relation="ge",
        ),
        build.constraint(
            "p_abx", (0, 1, 2), np.einsum("i,j,k->ijk", true, true, build.above(x, 5)), 0.05, relation="le",
        ),
        build.constraint("e_y", (3,), y.rescale(y.values), 0.6),
    ]
    return ConstraintSet([a, b, x, y, z], constraints)
