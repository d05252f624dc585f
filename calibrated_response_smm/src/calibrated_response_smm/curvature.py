"""The dual's curvature where the full covariance is out of reach: localised to shared variables.

The Newton step solves ``(Cov(g) + diag(s^2)) d = c - E[g] - s^2 lambda``. With K
constraints the full covariance costs ``K^2 C`` per iteration and, estimated from C
chains, it is singular once K approaches C (its small eigenvalues are underestimated
and the step overshoots along them). The variances alone (a diagonal step) ignore
exactly the couplings that make a fit slow: an ``E[X]`` and the ``P(X > t | B)`` that
share ``X`` move the same mass, and a diagonal step lets them fight for many
iterations and stop short of the optimum.

Localisation keeps the covariance of every pair of constraints whose scopes share a
variable and drops the rest, as an ensemble Kalman filter tapers its sample
covariance: the Schur product ``Cov o T`` with the taper
``T_kl = |scope_k & scope_l| / sqrt(|scope_k| |scope_l|)``, i.e. ``T = D^-1/2 B B^T D^-1/2``
for the constraint-variable incidence ``B``. ``T`` is positive semi-definite with unit
diagonal, so by the Schur product theorem the tapered covariance is too, and every
step ascends the dual (a 0/1 mask would not be: dropping entries of a covariance can
leave it indefinite). ``P`` pairs cost ``O(P C)`` to estimate and ``O(P)`` per product;
the system is solved by conjugate gradients. Where a variable sits in more than
``MAX_SHARED`` constraints only its pairs with the constraints on that variable alone
are kept, so a hub does not add a quadratic number of pairs.
"""

from __future__ import annotations

from typing import NamedTuple

import attrs
import jax
import jax.numpy as jnp
import numpy as np

#: A variable in more constraints than this couples only its own single-variable ones with the rest.
MAX_SHARED = 48
#: Pairs per block of the covariance estimate (bounds its ``[block, C]`` temporaries).
PAIR_BLOCK = 512
CG_ITERATIONS = 64
CG_TOLERANCE = 1e-4


@attrs.frozen(eq=False)
class HostPattern:
    """Pairs ``(first[p], second[p])``, ``first < second``, of constraints that share a variable, with their taper."""

    first: np.ndarray
    second: np.ndarray
    taper: np.ndarray  # T_kl of the pair (module doc)
    n_constraints: int

    @property
    def n_pairs(self) -> int:
        return int(self.first.size)

    def device(self, n_padded: int) -> Pattern:
        """Padded to whole blocks with pairs of the spare multiplier ``n_padded - 1`` (values 0)."""
        size = max(-(-self.n_pairs // PAIR_BLOCK), 1) * PAIR_BLOCK
        first = np.full(size, n_padded - 1, np.int32)
        second = np.full(size, n_padded - 1, np.int32)
        taper = np.zeros(size, np.float32)
        first[: self.n_pairs], second[: self.n_pairs], taper[: self.n_pairs] = self.first, self.second, self.taper
        return Pattern(jnp.asarray(first), jnp.asarray(second), jnp.asarray(taper))


class Pattern(NamedTuple):
    first: jax.Array  # i32[P]
    second: jax.Array  # i32[P]
    taper: jax.Array  # f32[P]


class LocalCovariance(NamedTuple):
    """The chains' feature covariance on the pattern (device pytree)."""

    variances: jax.Array  # f32[K]
    first: jax.Array  # i32[P]
    second: jax.Array  # i32[P]
    covariances: jax.Array  # f32[P], tapered


def sharing_pattern(scopes: list[tuple[int, ...]]) -> HostPattern:
    """The pairs of constraints (given by their scopes' variables) that share a variable, and their taper."""
    by_variable: dict[int, list[int]] = {}
    for k, scope in enumerate(scopes):
        for v in set(scope):
            by_variable.setdefault(int(v), []).append(k)
    single = {k for k, scope in enumerate(scopes) if len(set(scope)) == 1}
    chunks = []
    for v, members in by_variable.items():
        members = np.asarray(members, np.int64)
        if members.size <= MAX_SHARED:
            i, j = np.triu_indices(members.size, 1)
            chunks.append(np.stack([members[i], members[j]], axis=1))
        else:  # a hub: its own one-variable constraints against everything on it
            own = members[np.isin(members, list(single))]
            for k in own:
                chunks.append(np.stack([np.full(members.size, k), members], axis=1))
    pairs = np.concatenate(chunks) if chunks else np.zeros((0, 2), np.int64)
    pairs = np.sort(pairs, axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    pairs, shared = np.unique(pairs, axis=0, return_counts=True)  # one row per shared variable
    arity = np.array([len(set(scope)) for scope in scopes], np.float64)
    taper = shared / np.sqrt(arity[pairs[:, 0]] * arity[pairs[:, 1]]) if pairs.size else np.zeros(0)
    return HostPattern(pairs[:, 0].astype(np.int32), pairs[:, 1].astype(np.int32), taper.astype(np.float64),
                       len(scopes))


def local_covariance(pattern: Pattern, values) -> LocalCovariance:
    """Variances and tapered pattern covariances of per-chain feature values ``[K, C]``."""
    centred = values - values.mean(axis=1, keepdims=True)
    variances = jnp.mean(centred * centred, axis=1)

    def block(pairs):
        first, second = pairs
        return jnp.mean(centred[first] * centred[second], axis=1)

    shape = (-1, PAIR_BLOCK)
    covariances = jax.lax.map(block, (pattern.first.reshape(shape), pattern.second.reshape(shape))).reshape(-1)
    return LocalCovariance(variances, pattern.first, pattern.second, covariances * pattern.taper)


def local_product(curvature: LocalCovariance, diagonal, v):
    """``(diag(diagonal) + offdiagonal pattern covariance) @ v``."""
    k = v.shape[0]
    off = jax.ops.segment_sum(curvature.covariances * v[curvature.second], curvature.first, num_segments=k)
    off = off + jax.ops.segment_sum(curvature.covariances * v[curvature.first], curvature.second, num_segments=k)
    return diagonal * v + off


def local_solve(curvature: LocalCovariance, s2, grad, free):
    """``(tapered Cov + diag(s^2)) d = grad`` on the free multipliers by Jacobi-preconditioned CG.

    Falls back to the diagonal solution where CG's answer is not finite or, from
    float32 rounding, does not ascend (``d . grad <= 0``).
    """
    diagonal = curvature.variances + s2 + 1e-6
    rhs = jnp.where(free, grad, 0.0)

    def product(v):
        return jnp.where(free, local_product(curvature, diagonal, jnp.where(free, v, 0.0)), v)

    solution, _ = jax.scipy.sparse.linalg.cg(product, rhs, tol=CG_TOLERANCE, maxiter=CG_ITERATIONS,
                                             M=lambda r: r / diagonal)
    fallback = rhs / diagonal
    ascends = jnp.vdot(solution, rhs) > 0.0
    return jnp.where(ascends & jnp.all(jnp.isfinite(solution)), solution, fallback)


# -- host side (the polish, float64) -------------------------------------------------


def host_matrix(pattern: HostPattern, variances, covariances, s2):
    """The tapered ``Cov + diag(s^2)`` (``covariances`` already tapered) as a scipy sparse matrix (CSR)."""
    from scipy import sparse

    k = pattern.n_constraints
    rows = np.concatenate([np.arange(k), pattern.first, pattern.second])
    cols = np.concatenate([np.arange(k), pattern.second, pattern.first])
    data = np.concatenate([np.asarray(variances, np.float64) + s2, covariances, covariances])
    return sparse.csr_matrix((data, (rows, cols)), shape=(k, k))


def host_solve(matrix, rhs, free) -> np.ndarray:
    """The host counterpart of :func:`local_solve`: CG on the free block, diagonal fallback."""
    from scipy.sparse.linalg import cg

    free = np.asarray(free, bool)
    reduced = matrix[free][:, free]
    diagonal = reduced.diagonal()
    fallback = np.zeros_like(rhs)
    fallback[free] = rhs[free] / diagonal
    if not free.any():
        return fallback
    solution, _ = cg(reduced, rhs[free], rtol=1e-8, maxiter=10 * CG_ITERATIONS,
                     M=_jacobi(diagonal))
    direction = np.zeros_like(rhs)
    direction[free] = solution
    good = np.all(np.isfinite(direction)) and float(direction @ rhs) > 0.0
    return direction if good else fallback


def _jacobi(diagonal):
    from scipy.sparse.linalg import LinearOperator

    return LinearOperator((diagonal.size, diagonal.size), matvec=lambda r: r / diagonal, dtype=np.float64)
