"""The localised covariance of the Newton step and its truncated CG, against dense numpy references."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from calibrated_response_smm import curvature
from calibrated_response_smm.curvature import (
    host_matrix,
    host_solve,
    local_covariance,
    local_solve,
    sharing_pattern,
    truncated_cg,
)

# a chain x0 - x1 - x2 - x3 with unary constraints on x0 and x2, and a second feature on (x1, x2)
SCOPES = [(0,), (0, 1), (1, 2), (1, 2), (2,), (2, 3)]


def dense_mask(scopes) -> np.ndarray:
    """1 where two constraints share a variable (and on the diagonal), else 0, written out."""
    k = len(scopes)
    return np.array([[float(bool(set(scopes[a]) & set(scopes[b]))) for b in range(k)] for a in range(k)])


def dense_from_pattern(pattern, variances, covariances) -> np.ndarray:
    matrix = np.diag(np.asarray(variances, np.float64))
    matrix[pattern.first, pattern.second] = covariances
    matrix[pattern.second, pattern.first] = covariances
    return matrix


def test_pattern_holds_exactly_the_sharing_pairs():
    pattern = sharing_pattern(SCOPES)
    mask = dense_mask(SCOPES)
    expected = {(a, b) for a in range(len(SCOPES)) for b in range(a + 1, len(SCOPES)) if mask[a, b] > 0}
    assert set(zip(pattern.first.tolist(), pattern.second.tolist())) == expected
    assert pattern.n_pairs == len(expected)  # (1, 2) and (1, 2) share two variables: one pair


def test_two_hops_add_the_pairs_a_third_constraint_bridges():
    pattern = sharing_pattern(SCOPES, hops=2)
    mask = dense_mask(SCOPES)
    bridged = (mask @ mask) > 0  # a third constraint shares a variable with each
    expected = {(a, b) for a in range(len(SCOPES)) for b in range(a + 1, len(SCOPES)) if bridged[a, b]}
    assert (0, 2) in expected and (0, 5) not in expected  # x0 .. (x1, x2) through (x0, x1); x0 .. x3 is three links
    assert set(zip(pattern.first.tolist(), pattern.second.tolist())) == expected


def test_a_hub_keeps_only_its_own_constraints_pairs(monkeypatch):
    monkeypatch.setattr(curvature, "MAX_SHARED", 3)
    scopes = [(0,), (0, 1), (0, 2), (0, 3), (0, 4)]  # x0 in five constraints, one of them on x0 alone
    pattern = sharing_pattern(scopes)
    assert set(zip(pattern.first.tolist(), pattern.second.tolist())) == {(0, 1), (0, 2), (0, 3), (0, 4)}


def test_local_covariance_is_the_masked_sample_covariance():
    pattern = sharing_pattern(SCOPES)
    rng = np.random.default_rng(0)
    k, chains = len(SCOPES), 300
    values = rng.normal(size=(k, chains)) + 0.7 * rng.normal(size=(1, chains))  # correlated features
    padded = np.vstack([values, np.zeros((1, chains))])  # the spare multiplier row the padding points at
    local = local_covariance(pattern.device(k + 1), jnp.asarray(padded, jnp.float32))
    reference = np.cov(values, bias=True) * dense_mask(SCOPES)
    got = dense_from_pattern(pattern, np.asarray(local.variances)[:k], np.asarray(local.covariances)[: pattern.n_pairs])
    # float32 sums of 300 products of O(1) values: 1e-5 relative
    np.testing.assert_allclose(got, reference, atol=2e-5)


@pytest.mark.parametrize("held", [None, 2])
def test_local_solve_matches_a_dense_solve(held):
    pattern = sharing_pattern(SCOPES)
    rng = np.random.default_rng(1)
    k, chains = len(SCOPES), 400
    values = rng.normal(size=(k, chains)) + 0.9 * rng.normal(size=(1, chains))
    padded = jnp.asarray(np.vstack([values, np.zeros((1, chains))]), jnp.float32)
    local = local_covariance(pattern.device(k + 1), padded)
    s2 = np.full(k + 1, 1e-3)
    grad = np.append(rng.normal(size=k), 0.0)
    free = np.ones(k + 1, bool)
    if held is not None:
        free[held] = False
    solution = np.asarray(local_solve(local, jnp.asarray(s2, jnp.float32), jnp.asarray(grad, jnp.float32),
                                      jnp.asarray(free)))
    matrix = dense_from_pattern(pattern, np.asarray(local.variances)[:k], np.asarray(local.covariances)[: pattern.n_pairs])
    matrix += np.diag(s2[:k] + 1e-6)
    f = free[:k]
    expected = np.zeros(k)
    expected[f] = np.linalg.solve(matrix[np.ix_(f, f)], grad[:k][f])
    # CG to a relative residual of 1e-4 in float32 on a system of condition ~1e2
    np.testing.assert_allclose(solution[:k], expected, rtol=5e-3, atol=5e-3 * np.abs(expected).max())
    if held is not None:
        assert solution[held] == 0.0


def test_host_solve_matches_a_dense_solve():
    pattern = sharing_pattern(SCOPES)
    rng = np.random.default_rng(2)
    values = rng.normal(size=(len(SCOPES), 500)) + 0.5 * rng.normal(size=(1, 500))
    cov = np.cov(values, bias=True) * dense_mask(SCOPES)
    s2 = np.full(len(SCOPES), 1e-3)
    matrix = host_matrix(pattern, np.diag(cov), cov[pattern.first, pattern.second], s2)
    grad = rng.normal(size=len(SCOPES))
    free = np.array([True, True, False, True, True, True])
    expected = np.zeros(len(SCOPES))
    expected[free] = np.linalg.solve((cov + np.diag(s2))[np.ix_(free, free)], grad[free])
    np.testing.assert_allclose(host_solve(matrix, grad, free), expected, rtol=1e-6, atol=1e-9)


def _indefinite_system(seed: int):
    """A symmetric matrix with one negative eigenvalue and a right-hand side."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    matrix = (q * np.array([-0.5, 0.2, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0])) @ q.T
    return matrix, rng.normal(size=8)


@pytest.mark.parametrize("seed", range(5))
def test_truncated_cg_ascends_on_an_indefinite_matrix(seed):
    matrix, rhs = _indefinite_system(seed)
    diagonal = np.abs(np.diag(matrix)) + 0.1
    device = np.asarray(truncated_cg(lambda v: jnp.asarray(matrix, jnp.float32) @ v, jnp.asarray(rhs, jnp.float32),
                                     jnp.asarray(diagonal, jnp.float32), tol=1e-6, maxiter=50))
    host = host_solve(host_matrix_of(matrix), rhs, np.ones(8, bool))
    for direction in (device, host):
        assert np.all(np.isfinite(direction)) and direction @ rhs > 0.0  # the dual still ascends along it


def test_truncated_cg_solves_a_positive_definite_system():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(8, 8))
    matrix, rhs = a @ a.T + np.eye(8), rng.normal(size=8)
    solution = truncated_cg(lambda v: jnp.asarray(matrix, jnp.float32) @ v, jnp.asarray(rhs, jnp.float32),
                            jnp.asarray(np.diag(matrix), jnp.float32), tol=1e-6, maxiter=50)
    # float32 CG to a relative residual of 1e-6 on a system of condition ~1e2
    np.testing.assert_allclose(np.asarray(solution), np.linalg.solve(matrix, rhs), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(host_solve(host_matrix_of(matrix), rhs, np.ones(8, bool)), np.linalg.solve(matrix, rhs),
                               rtol=1e-6)


def host_matrix_of(dense):
    from scipy import sparse

    return sparse.csr_matrix(dense)
