"""The dual's curvature where the full covariance is out of reach: localised to shared variables.

The Newton step solves ``(Cov(g) + diag(s^2)) d = c - E[g] - s^2 lambda``. With K
constraints the full covariance costs ``K^2 C`` per iteration and, estimated from C
chains, it is singular once K approaches C (its small eigenvalues are underestimated
and the step overshoots along them). The variances alone (a diagonal step) ignore
exactly the couplings that make a fit slow: an ``E[X]`` and the ``P(X > t | B)`` that
share ``X`` move the same mass, and a diagonal step lets them fight for many
iterations and stop short of the optimum.

Localisation keeps the chains' covariance of every pair of constraints that are
*near*, at its full value, and drops the rest. Two constraints are near when their
scopes share a variable (``HOPS = 1``); with ``hops = 2`` also when a third
constraint's scope (a bridge) shares a variable with each. Bridges see more of a
strongly coupled cluster (an estimate ``P(B | A)`` fitted with a multiplier of 20
nats makes ``P(A)`` and ``P(B)``, which share no variable, nearly collinear), but on
synthetic 1,000-variable trees they made the search and the polish no better (seeds
1-2, three polish steps: max marginal error 0.019 and 0.012 against 0.014 and 0.018,
one search 190 iterations against 70) for three times the pairs, so one hop is the
default.
Shrinking the kept entries instead (a Schur product with a positive semi-definite
taper such as ``|s_k & s_l| / sqrt(|s_k| |s_l|)``, which keeps the matrix
semi-definite) makes two nearly collinear features look independent: the step along
their difference, where the dual is flattest, comes out several times too short, and
on a 1,000-variable synthetic tree the fit stopped 0.016 away from the exact
marginals (0.008 with the entries kept whole). The masked matrix may be indefinite,
so the system is solved by truncated conjugate gradients (Newton-CG): the iteration
stops at the first search direction of non-positive curvature and returns the last
iterate, which still ascends the dual (at the first, the preconditioned gradient). ``P`` pairs cost ``O(P C)`` to
estimate and ``O(P)`` per product. Where a variable sits in more than ``MAX_SHARED``
constraints it links, and bridges, nothing: only its pairs with the constraints on
that variable alone are kept, so a hub does not add a quadratic number of pairs.
"""

from __future__ import annotations

from typing import NamedTuple

import attrs
import jax
import jax.numpy as jnp
import numpy as np

#: A variable in more constraints than this couples only its own single-variable ones with the rest.
MAX_SHARED = 48
#: Constraints are near (their covariance is kept) within this many shared-variable links.
HOPS = 1
#: Pairs per block of the covariance estimate (bounds its ``[block, C]`` temporaries).
PAIR_BLOCK = 512
CG_ITERATIONS = 64
CG_TOLERANCE = 1e-4


@attrs.frozen(eq=False)
class HostPattern:
    """Pairs ``(first[p], second[p])``, ``first < second``, of constraints that share a variable."""

    first: np.ndarray
    second: np.ndarray
    n_constraints: int

    @property
    def n_pairs(self) -> int:
        return int(self.first.size)

    def device(self, n_padded: int) -> Pattern:
        """Padded to whole blocks with pairs of the spare multiplier ``n_padded - 1`` (values 0)."""
        size = max(-(-self.n_pairs // PAIR_BLOCK), 1) * PAIR_BLOCK
        first = np.full(size, n_padded - 1, np.int32)
        second = np.full(size, n_padded - 1, np.int32)
        first[: self.n_pairs], second[: self.n_pairs] = self.first, self.second
        return Pattern(jnp.asarray(first), jnp.asarray(second))


class Pattern(NamedTuple):
    first: jax.Array  # i32[P]
    second: jax.Array  # i32[P]


class LocalCovariance(NamedTuple):
    """The chains' feature covariance on the pattern (device pytree)."""

    variances: jax.Array  # f32[K]
    first: jax.Array  # i32[P]
    second: jax.Array  # i32[P]
    covariances: jax.Array  # f32[P]


def sharing_pattern(scopes: list[tuple[int, ...]], hops: int | None = None) -> HostPattern:
    """The pairs of near constraints (given by their scopes' variables): within ``hops`` (default ``HOPS``)
    links through shared variables (see the module doc; hubs link only their one-variable constraints)."""
    from scipy import sparse

    hops = HOPS if hops is None else int(hops)
    k = len(scopes)
    owners = [(c, int(v)) for c, scope in enumerate(scopes) for v in set(scope)]
    constraint, variable = (np.array(a, np.int64) for a in zip(*owners)) if owners else (np.zeros(0, np.int64),) * 2
    n_vars = int(variable.max()) + 1 if variable.size else 0
    degree = np.bincount(variable, minlength=n_vars)
    light = degree[variable] <= MAX_SHARED
    incidence = sparse.csr_matrix((np.ones(int(light.sum())), (constraint[light], variable[light])), shape=(k, n_vars))
    one_hop = (incidence @ incidence.T).tocsr()
    near = one_hop
    for _ in range(hops - 1):
        near = (near @ one_hop).tocsr()
    near = sparse.triu(near, 1).tocoo()
    chunks = [np.stack([near.row, near.col], axis=1)]
    single = np.zeros(k, bool)
    single[[c for c, scope in enumerate(scopes) if len(set(scope)) == 1]] = True
    for v in np.flatnonzero(degree > MAX_SHARED):  # a hub: its own one-variable constraints against everything on it
        members = constraint[variable == v]
        for c in members[single[members]]:
            chunks.append(np.stack([np.full(members.size, c), members], axis=1))
    pairs = np.sort(np.concatenate(chunks).astype(np.int64), axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    pairs = np.unique(pairs, axis=0) if len(pairs) else pairs.reshape(0, 2)
    return HostPattern(pairs[:, 0].astype(np.int32), pairs[:, 1].astype(np.int32), k)


def local_covariance(pattern: Pattern, values) -> LocalCovariance:
    """Variances and pattern covariances of per-chain feature values ``[K, C]``."""
    centred = values - values.mean(axis=1, keepdims=True)
    variances = jnp.mean(centred * centred, axis=1)

    def block(pairs):
        first, second = pairs
        return jnp.mean(centred[first] * centred[second], axis=1)

    shape = (-1, PAIR_BLOCK)
    covariances = jax.lax.map(block, (pattern.first.reshape(shape), pattern.second.reshape(shape))).reshape(-1)
    return LocalCovariance(variances, pattern.first, pattern.second, covariances)


def local_product(curvature: LocalCovariance, diagonal, v):
    """``(diag(diagonal) + offdiagonal pattern covariance) @ v``."""
    k = v.shape[0]
    off = jax.ops.segment_sum(curvature.covariances * v[curvature.second], curvature.first, num_segments=k)
    off = off + jax.ops.segment_sum(curvature.covariances * v[curvature.first], curvature.second, num_segments=k)
    return diagonal * v + off


def truncated_cg(product, rhs, diagonal, tol: float = CG_TOLERANCE, maxiter: int = CG_ITERATIONS):
    """Jacobi-preconditioned conjugate gradients for ``A d = rhs``, stopped at non-positive curvature.

    For a symmetric ``A`` that may be indefinite (Newton-CG): every iterate before the
    first search direction ``p`` with ``p.A p <= 0`` has ``d.rhs > 0``; at that point
    the last iterate is returned, or the preconditioned ``rhs`` if it comes first.
    """
    z0 = rhs / diagonal
    limit = (tol * jnp.linalg.norm(rhs)) ** 2

    def going(state):
        _, r, _, _, i, stop = state
        return (i < maxiter) & ~stop & (jnp.vdot(r, r) > limit)

    def iterate(state):
        d, r, p, rz, i, _ = state
        ap = product(p)
        curvature = jnp.vdot(p, ap)
        negative = curvature <= 0.0
        alpha = jnp.where(negative, 0.0, rz / jnp.where(negative, 1.0, curvature))
        d = jnp.where(negative & (i == 0), z0, d + alpha * p)
        r = r - alpha * ap
        z = r / diagonal
        rz_new = jnp.vdot(r, z)
        p = z + (rz_new / jnp.where(rz == 0.0, 1.0, rz)) * p
        return d, r, p, rz_new, i + 1, negative

    state = (jnp.zeros_like(rhs), rhs, z0, jnp.vdot(rhs, z0), jnp.int32(0), jnp.bool_(False))
    return jax.lax.while_loop(going, iterate, state)[0]


def local_solve(curvature: LocalCovariance, s2, grad, free):
    """``(local Cov + diag(s^2)) d = grad`` on the free multipliers by truncated CG (:func:`truncated_cg`).

    Falls back to the diagonal solution where the answer is not finite or, from
    float32 rounding, does not ascend (``d . grad <= 0``).
    """
    diagonal = curvature.variances + s2 + 1e-6
    rhs = jnp.where(free, grad, 0.0)

    def product(v):
        return jnp.where(free, local_product(curvature, diagonal, jnp.where(free, v, 0.0)), v)

    solution = truncated_cg(product, rhs, diagonal)
    fallback = rhs / diagonal
    ascends = jnp.vdot(solution, rhs) > 0.0
    return jnp.where(ascends & jnp.all(jnp.isfinite(solution)), solution, fallback)


# -- host side (the polish, float64) -------------------------------------------------


def host_matrix(pattern: HostPattern, variances, covariances, s2):
    """The local ``Cov + diag(s^2)`` as a scipy sparse matrix (CSR)."""
    from scipy import sparse

    k = pattern.n_constraints
    rows = np.concatenate([np.arange(k), pattern.first, pattern.second])
    cols = np.concatenate([np.arange(k), pattern.second, pattern.first])
    data = np.concatenate([np.asarray(variances, np.float64) + s2, covariances, covariances])
    return sparse.csr_matrix((data, (rows, cols)), shape=(k, k))


def host_solve(matrix, rhs, free, tol: float = 1e-8) -> np.ndarray:
    """The host counterpart of :func:`local_solve` in float64: truncated CG on the free block, diagonal fallback."""
    free = np.asarray(free, bool)
    fallback = np.zeros_like(rhs)
    if not free.any():
        return fallback
    reduced = matrix[free][:, free]
    diagonal = reduced.diagonal()
    b = rhs[free]
    fallback[free] = b / diagonal
    d, r = np.zeros_like(b), b.copy()
    z = r / diagonal
    p, rz = z.copy(), float(r @ z)
    limit = (tol * np.linalg.norm(b)) ** 2
    for i in range(10 * CG_ITERATIONS):
        if float(r @ r) <= limit:
            break
        ap = reduced @ p
        curvature = float(p @ ap)
        if curvature <= 0.0:  # negative curvature: keep the last iterate (module doc)
            if i == 0:
                d = z
            break
        alpha = rz / curvature
        d, r = d + alpha * p, r - alpha * ap
        z = r / diagonal
        rz, previous = float(r @ z), rz
        p = z + (rz / previous) * p
    direction = np.zeros_like(rhs)
    direction[free] = d
    good = np.all(np.isfinite(direction)) and float(direction @ rhs) > 0.0
    return direction if good else fallback
