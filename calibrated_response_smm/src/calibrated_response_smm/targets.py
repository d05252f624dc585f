"""What the model is fitted to.

Two kinds of targets, one engine:

* :class:`TableTargets` — a target table per factor, i.e. one indicator feature per
  table cell (the classical MRF learning problem); the parameters are the factor
  tables themselves. Built by :func:`build_targets_from_marginals` and
  :func:`build_targets_from_samples`.
* :class:`MomentTargets` — linear moment constraints ``E[g_k] (=, <=, >=) c_k`` with
  multipliers ``lambda_k``; factor tables are ``theta_f = sum_{k in f} lambda_k G_k``
  (``docs/semantics.md``). Built from a core ``ConstraintSet`` by :mod:`.adapters`.

Each host-side target set becomes a device objective (a NamedTuple of padded arrays)
with the same four operations: parameters -> factor tables, the dual's ascent
direction from the model's table moments, the projection onto the sign bounds, and
per-chain feature values (for the Newton preconditioner).
"""

from __future__ import annotations

from typing import NamedTuple

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from calibrated_response_plugins import dual

from .features import LayoutShape, TableLayout, bucket, pad_table, state_mask
from .graph import FactorGraph


@attrs.frozen(eq=False)
class TableTargets:
    """Target probability table per factor (in graph factor order)."""

    tables: tuple[np.ndarray, ...] = attrs.field(converter=lambda ts: tuple(np.asarray(t, np.float64) for t in ts))


@attrs.frozen(eq=False)
class MomentTarget:
    """One constraint: feature table over its factor's scope, target, l2 variance, relation.

    ``denominator`` is set when the constraint is read as a ratio of two scope means
    (a conditional ``E[w_AC] / E[w_C]``): the table of that denominator. Such factors
    get scope-wise Rao-Blackwellised final moments (:mod:`.scope_moments`).
    """

    factor_id: int
    feature: np.ndarray
    target: float
    s2: float
    relation: str = "eq"
    denominator: np.ndarray | None = None


@attrs.frozen(eq=False)
class MomentTargets:
    """Constraints in input order; multiplier ``k`` belongs to ``constraints[k]``."""

    constraints: tuple[MomentTarget, ...] = attrs.field(converter=tuple)

    @property
    def targets(self) -> np.ndarray:
        return np.array([c.target for c in self.constraints], dtype=np.float64)



def build_targets_from_marginals(graph: FactorGraph, marginal_tables) -> TableTargets:
    """Targets from one (normalised) marginal table per factor, in factor order."""
    tables = [np.asarray(t, dtype=np.float64) for t in marginal_tables]
    if len(tables) != len(graph.factors):
        raise ValueError(f"got {len(tables)} marginal tables for {len(graph.factors)} factors")
    for factor, table in zip(graph.factors, tables):
        if table.shape != factor.table_shape:
            raise ValueError(f"factor {factor.id}: marginal table has shape {table.shape}, expected {factor.table_shape}")
        if not np.isclose(table.sum(), 1.0, atol=1e-6) or table.min() < 0:
            raise ValueError(f"factor {factor.id}: marginal table must be a probability table")
    return TableTargets(tables)


def state_bins(graph: FactorGraph, sample_states) -> np.ndarray:
    """Bin index per variable, ``int[N, n_vars]``, from an array or a ``{"cat", "cont"}`` pytree."""
    if isinstance(sample_states, dict):
        n = np.asarray(sample_states["cat"] if len(sample_states["cat"]) else sample_states["cont"]).shape[0]
        cat = np.asarray(sample_states["cat"]).reshape(n, -1)
        cont = np.asarray(sample_states["cont"], dtype=np.float64).reshape(n, -1)
        out = np.zeros((n, graph.n_vars), dtype=np.int64)
        ci = ki = 0
        for index, variable in enumerate(graph.variables):
            if variable.kind == "categorical":
                out[:, index] = cat[:, ci]
                ci += 1
            else:
                width = (variable.high - variable.low) / variable.num_bins
                out[:, index] = np.clip(np.floor((cont[:, ki] - variable.low) / width), 0, variable.num_bins - 1)
                ki += 1
        return out
    bins = np.asarray(sample_states, dtype=np.int64)
    if bins.ndim != 2 or bins.shape[1] != graph.n_vars:
        raise ValueError(f"sample states must have shape [N, {graph.n_vars}], got {bins.shape}")
    return bins


def build_targets_from_samples(graph: FactorGraph, sample_states) -> TableTargets:
    """Targets from the empirical factor-scope frequencies of samples."""
    bins = state_bins(graph, sample_states)
    tables = []
    for factor in graph.factors:
        counts = np.zeros(factor.table_shape)
        np.add.at(counts, tuple(bins[:, v] for v in factor.var_ids), 1.0)
        tables.append(counts / max(len(bins), 1))
    return TableTargets(tables)


# -- device objectives --------------------------------------------------------------


class MomentObjective(NamedTuple):
    """Padded constraint arrays; bucket ``a`` holds the constraints of arity-``a`` factors."""

    features: tuple  # f32[K_a, S**a] per bucket
    factor: tuple  # i32[K_a]: factor position in its bucket
    index: tuple  # i32[K_a]: multiplier index (padding: the spare last one)
    scopes: tuple  # i32[K_a, a]: chain rows of the scope
    target: jax.Array  # f32[K]
    s2: jax.Array  # f32[K]
    lower: jax.Array  # f32[K]: 0 for "ge", -inf otherwise
    upper: jax.Array  # f32[K]: 0 for "le", +inf otherwise


class TableObjective(NamedTuple):
    """Target tables with their real-state mask and the l2 weight."""

    target: tuple  # f32[F_a, S**a]
    mask: tuple  # f32[F_a, S**a]
    l2: jax.Array  # f32[]


def moment_objective(layout: TableLayout, targets: MomentTargets) -> MomentObjective:
    """Pad a :class:`MomentTargets` into device arrays (one spare multiplier for padding)."""
    S = layout.n_states
    K = len(targets.constraints)
    K_pad = bucket(K + 1, 32)
    spare = K_pad - 1
    features, factor, index, scopes = [], [], [], []
    # factor id -> (bucket, position): one pass, not a search of every bucket per constraint
    where = {int(fid): (a, pos) for a, b in enumerate(layout.buckets) for pos, fid in enumerate(b.factor_ids) if fid >= 0}
    by_bucket = [[] for _ in layout.buckets]
    for k, c in enumerate(targets.constraints):
        if c.factor_id in where:
            a, pos = where[c.factor_id]
            by_bucket[a].append((k, pos, c))
    for b, members in zip(layout.buckets, by_bucket):
        size = bucket(len(members), 16 if b.arity < 3 else 8)
        g = np.zeros((size, S**b.arity), np.float32)
        f = np.zeros(size, np.int32)
        idx = np.full(size, spare, np.int32)
        sc = np.full((size, b.arity), layout.dummy, np.int32)
        for row, (k, pos, c) in enumerate(members):
            g[row] = pad_table(c.feature, S).reshape(-1)
            f[row], idx[row], sc[row] = pos, k, b.scopes[pos]
        features.append(g)
        factor.append(f)
        index.append(idx)
        scopes.append(sc)

    def padded(values, fill):
        out = np.full(K_pad, fill, np.float32)
        out[:K] = values
        return out

    lower, upper = dual.sign_bounds([c.relation for c in targets.constraints])
    return MomentObjective(
        features=tuple(jnp.asarray(a) for a in features),
        factor=tuple(jnp.asarray(a) for a in factor),
        index=tuple(jnp.asarray(a) for a in index),
        scopes=tuple(jnp.asarray(a) for a in scopes),
        target=jnp.asarray(padded(targets.targets, 0.0)),
        s2=jnp.asarray(padded([c.s2 for c in targets.constraints], 1.0)),
        lower=jnp.asarray(padded(lower, 0.0)),
        upper=jnp.asarray(padded(upper, 0.0)),
    )


def table_objective(layout: TableLayout, graph: FactorGraph, targets: TableTargets, l2: float) -> TableObjective:
    """Pad a :class:`TableTargets` into bucket arrays."""
    S = layout.n_states
    out = []
    for b in layout.buckets:
        t = np.zeros((b.size, S**b.arity), np.float32)
        for i, fid in enumerate(b.factor_ids):
            if fid >= 0:
                t[i] = pad_table(targets.tables[fid], S).reshape(-1)
        out.append(jnp.asarray(t))
    mask = tuple(jnp.asarray(m) for m in state_mask(layout, graph))
    return TableObjective(tuple(out), mask, jnp.asarray(l2, jnp.float32))


def init_params(objective):
    """Zero multipliers (or zero tables): the uniform model the chains start from."""
    if isinstance(objective, MomentObjective):
        return jnp.zeros_like(objective.target)
    return tuple(jnp.zeros_like(t) for t in objective.target)


def params_to_tables(objective, params, shape: LayoutShape):
    """Factor tables per bucket: ``theta_f = sum_{k in f} lambda_k G_k`` (or the params)."""
    if isinstance(objective, TableObjective):
        return params
    return tuple(
        jax.ops.segment_sum(params[idx][:, None] * g, fac, num_segments=size)
        for g, fac, idx, size in zip(objective.features, objective.factor, objective.index, shape.bucket_sizes)
    )


def feature_means(objective: MomentObjective, moments) -> jax.Array:
    """``E[g_k]`` from the model's table moments per bucket."""
    means = jnp.zeros_like(objective.target)
    for g, fac, idx, m in zip(objective.features, objective.factor, objective.index, moments):
        means = means.at[idx].add(jnp.sum(m[fac] * g, axis=1))
    return means


def ascent(objective, params, moments):
    """The dual's ascent direction: ``c - E[g] - s^2 lambda`` (per cell for tables)."""
    if isinstance(objective, MomentObjective):
        return objective.target - feature_means(objective, moments) - objective.s2 * params
    return tuple(
        (t - m) * mask - objective.l2 * p for t, m, mask, p in zip(objective.target, moments, objective.mask, params)
    )


def project(objective, params):
    """Sign bounds: ``lambda >= 0`` for "ge", ``lambda <= 0`` for "le"."""
    if isinstance(objective, MomentObjective):
        return jnp.clip(params, objective.lower, objective.upper)
    return params


def chain_values(objective: MomentObjective, x, n_states: int) -> jax.Array:
    """Per-chain feature values ``g_k(x)``, ``[K, C]``."""
    values = jnp.zeros((objective.target.shape[0], x.shape[1]), jnp.float32)
    for g, idx, sc in zip(objective.features, objective.index, objective.scopes):
        arity = sc.shape[1]
        flat = jnp.zeros((sc.shape[0], x.shape[1]), jnp.int32)
        for j in range(arity):
            flat = flat * n_states + x[sc[:, j]]
        cell = jnp.take_along_axis(g, flat, axis=1)
        values = values.at[idx].add(cell)
    return values
