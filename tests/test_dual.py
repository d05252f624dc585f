"""The shared dual helpers: sign bounds, the held-at-a-bound test, projections, the Newton direction."""

from __future__ import annotations

import numpy as np
import pytest

from calibrated_response_plugins import dual

RELATIONS = ["eq", "ge", "le", "ge", "le"]


def test_sign_bounds_follow_the_relation():
    lower, upper = dual.sign_bounds(RELATIONS)
    np.testing.assert_array_equal(lower, [-np.inf, 0.0, -np.inf, 0.0, -np.inf])
    np.testing.assert_array_equal(upper, [np.inf, np.inf, 0.0, np.inf, 0.0])
    assert dual.scipy_bounds(RELATIONS) == [(None, None), (0.0, None), (None, 0.0), (0.0, None), (None, 0.0)]


def test_unknown_relation_is_named():
    with pytest.raises(ValueError, match="'lt'"):
        dual.sign_bounds(["eq", "lt"])


def test_held_only_at_a_bound_with_the_gradient_pushing_out():
    lower, upper = dual.sign_bounds(RELATIONS)
    lambdas = np.array([0.0, 0.0, 0.0, 0.0, -0.5])
    # a positive gradient means descent lowers lambda: out of [0, inf) for "ge" at 0
    gradient = np.array([1.0, 1.0, -1.0, -1.0, -1.0])
    held = dual.held_at_bound(lambdas, gradient, lower, upper)
    # eq is never held; ge at 0 pushed down is held; le at 0 pushed up is held;
    # ge at 0 pulled up is free; le away from its bound is free.
    np.testing.assert_array_equal(held, [False, True, True, False, False])
    np.testing.assert_array_equal(dual.free_gradient(lambdas, gradient, lower, upper), [1.0, 0.0, 0.0, -1.0, -1.0])


def test_projected_gradient_is_zero_exactly_at_a_bounded_optimum():
    lower, upper = dual.sign_bounds(["ge", "ge", "eq"])
    lambdas = np.array([0.0, 0.25, 1e20])
    gradient = np.array([2.0, 1.0, 1e-3])
    projected = dual.projected_gradient(lambdas, gradient, lower, upper)
    # held at 0: zero; a unit step would cross 0 from 0.25: cut to 0.25; far from any bound:
    # the gradient itself, although 1e20 - 1e-3 rounds to 1e20.
    np.testing.assert_array_equal(projected, [0.0, 0.25, 1e-3])
    np.testing.assert_array_equal(dual.clip_to_bounds(np.array([-1.0, 0.5, -3.0]), lower, upper), [0.0, 0.5, -3.0])


def test_dual_gradient_sign():
    # at E[g] = c - s^2 lambda the gradient vanishes (the softened optimum)
    lambdas, s2, targets = np.array([2.0, -1.0]), np.array([0.1, 0.01]), np.array([0.3, 0.5])
    means = targets - s2 * lambdas
    np.testing.assert_allclose(dual.dual_gradient(means, targets, s2, lambdas), 0.0, atol=1e-15)
    np.testing.assert_allclose(dual.dual_gradient(means + 0.1, targets, s2, lambdas), 0.1)


def test_newton_direction_solves_the_free_block_and_leaves_held_multipliers():
    hessian = np.array([[2.0, 0.5, 0.3], [0.5, 1.0, 0.2], [0.3, 0.2, 3.0]])
    gradient = np.array([1.0, -2.0, 0.7])
    free = np.array([True, False, True])
    direction = dual.newton_direction(hessian, gradient, free)
    assert direction[1] == 0.0
    reduced = hessian[np.ix_([0, 2], [0, 2])]
    np.testing.assert_allclose(reduced @ direction[[0, 2]], -gradient[[0, 2]], atol=1e-12)
    singular = np.ones((2, 2))
    fallback = dual.newton_direction(singular, np.array([1.0, 1.0]), np.array([True, True]))
    assert np.all(np.isfinite(fallback))
    np.testing.assert_allclose(singular @ fallback, [-1.0, -1.0], atol=1e-12)


def test_helpers_work_on_jax_arrays():
    jnp = pytest.importorskip("jax.numpy")
    lower, upper = dual.sign_bounds(["ge", "le"])
    held = dual.held_at_bound(jnp.zeros(2), jnp.array([1.0, -1.0]), jnp.asarray(lower), jnp.asarray(upper))
    assert held.tolist() == [True, True]
    clipped = dual.clip_to_bounds(jnp.array([-1.0, 1.0]), jnp.asarray(lower), jnp.asarray(upper), xp=jnp)
    assert clipped.tolist() == [0.0, 0.0]
