"""Builders for hand-made constraint sets (the core compiler is not needed for these tests)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from calibrated_response_plugins.constraints import Constraint, ConstraintSet, Domain


def continuous(name: str, lower: float, upper: float, n_bins: int = 21) -> Domain:
    """A continuous variable with equal bins; values are the bin centres."""
    edges = np.linspace(lower, upper, n_bins + 1)
    return Domain(name, "continuous", edges, (edges[:-1] + edges[1:]) / 2, lower, upper)


def binary(name: str) -> Domain:
    """A binary variable: states 0 and 1."""
    return Domain(name, "binary", [0.0, 0.5, 1.0], [0.0, 1.0], 0.0, 1.0)


def above(domain: Domain, threshold: float) -> np.ndarray:
    """Weight of ``X > threshold`` per state: the fraction of each bin above it."""
    edges = domain.bin_edges
    return np.clip((edges[1:] - threshold) / (edges[1:] - edges[:-1]), 0.0, 1.0)


def constraint(cid, scope, feature, target, s2=1e-3, relation="eq", numerator=None, denominator=None):
    """A constraint whose report is ``E[numerator] / E[denominator]`` (default ``E[feature]``)."""
    feature = np.asarray(feature, dtype=np.float64)
    numerator = feature if numerator is None else numerator
    denominator = np.ones_like(feature) if denominator is None else denominator
    return Constraint(
        id=cid,
        estimate_type="probability",
        relation=relation,
        scope=scope,
        feature=feature,
        target=target,
        s2=s2,
        report_numerator=numerator,
        report_denominator=denominator,
        report_target=target,
    )


@pytest.fixture
def build():
    """The builders above, for tests: ``build.continuous(...)``, ``build.constraint(...)``, ..."""

    return SimpleNamespace(
        continuous=continuous, binary=binary, above=above, constraint=constraint, ConstraintSet=ConstraintSet
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
