"""Correlation estimates: the one nonlinear constraint, fitted by successive linearisation.

``Corr(X, Y) = r`` is the constraint ``h(p) = Cov_p(X, Y) - r sd_p(X) sd_p(Y) = 0``
(``<= 0`` / ``>= 0`` for ``le`` / ``ge``) on the values of docs/semantics.md, each
variable rescaled to [0, 1] by its domain (a correlation does not change under that):
a binary is 0/1, a continuous value has mass uniform inside each bin, so
``E[X^2] = sum_i p_i (c_i^2 + w_i^2 / 12)``. ``h`` depends on ``p`` only through five
linear moments of the pair, ``m = (E[X], E[X^2], E[Y], E[Y^2], E[XY])``.

The answer maximises ``H(p) - sum_k (E[g_k] - c_k)^2 / (2 s_k^2) - sum_h h(p)^2 / (2 s_h^2)``.
:func:`fit_problem` reaches a stationary point of it by refitting the linear problem with
each ``h`` replaced by its linearisation at the current moments (a pair-scope feature
``G = sum_l dh/dm_l T_l`` and target ``G . m0 - h(m0)``, softened by the same ``s_h``),
warm-starting the backend each round, until the moments stop moving. At that fixed
point the backend's optimality condition is the exact stationarity condition. The first
round is the fit without correlations; the stationary point the iteration reaches from
there is the one returned (the problem is not convex). See ``docs/correlations.md``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np

from calibrated_response_plugins.compiler import clamped_s2
from calibrated_response_plugins.constraints import (
    Constraint,
    ConstraintSet,
    Domain,
    FitResult,
    frozen_array,
)

#: moments below this variance (in units of the squared domain span) make a variable constant.
MIN_VARIANCE = 1e-12
#: |fitted - target| correlation gap above which the fit says the target was not reached.
UNREACHED_GAP = 0.05
#: a round whose change exceeds the last one's by this factor counts as an overshoot.
OVERSHOOT = 1.2
#: the damping factor never drops below this.
MIN_DAMPING = 1.0 / 16.0
DEFAULT_ROUNDS = 30
#: rounds the Anderson acceleration of the outer loop mixes.
ANDERSON_MEMORY = 3
DEFAULT_TOLERANCE = 1e-6
#: an early round's inner tolerance is this fraction of the outer residual (the forcing term) ...
FORCING = 1e-3
#: ... at most this ...
LOOSEST_INNER = 1e-4
#: ... and the backend's own once the outer residual is below this many correlation_tolerance.
TIGHT_WITHIN = 100.0
#: A sampling backend's round settles once the moments moved by at most this many of its
#: standard errors (``FitResult.moment_stderr``): a smaller change is noise, not progress.
NOISE_Z = 2.0

Progress = Callable[[int, int, dict], None]


# --------------------------------------------------------------------------- compiled form


def rescaled_values(domain: Domain) -> tuple[np.ndarray, np.ndarray]:
    """Each state's value rescaled to [0, 1] and its within-state variance (``w^2 / 12``, 0 for a binary)."""
    values = domain.rescale(domain.values)
    if domain.kind == "binary":
        return values, np.zeros_like(values)
    widths = np.diff(domain.bin_edges) / domain.span
    return values, widths**2 / 12.0


def base_spread(domain: Domain) -> float:
    """The rescaled variable's standard deviation under the uniform base measure."""
    values, within = rescaled_values(domain)
    mean = values.mean()
    return float(np.sqrt(np.mean(values**2 + within) - mean**2))


@attrs.frozen(eq=False)
class CorrelationConstraint:
    """``Corr(X, Y) (=, <=, >=) r`` over the pair ``scope`` (ascending variable indices).

    ``values`` and ``within`` hold, for each scope variable, its rescaled state values
    and within-state variances; ``s2`` is ``s_h^2`` of the penalty on ``h``.
    """

    id: str
    relation: str = attrs.field(validator=attrs.validators.in_(("eq", "le", "ge")))
    scope: tuple[int, int] = attrs.field(converter=tuple)
    names: tuple[str, str] = attrs.field(converter=tuple)
    correlation: float
    s2: float
    values: tuple[np.ndarray, np.ndarray] = attrs.field(converter=lambda v: tuple(frozen_array(a) for a in v))
    within: tuple[np.ndarray, np.ndarray] = attrs.field(converter=lambda v: tuple(frozen_array(a) for a in v))

    @scope.validator
    def _check_scope(self, attribute, value):
        if len(value) != 2 or not value[0] < value[1]:
            raise ValueError(f"correlation {self.id!r}: scope {value} must be two ascending variable indices")

    @property
    def shape(self) -> tuple[int, int]:
        return (self.values[0].shape[0], self.values[1].shape[0])

    def moment_tables(self) -> np.ndarray:
        """The five tables ``T_l`` over the pair with ``E[T_l] = m_l``, shape ``(5, n_a, n_b)``."""
        (x, y), (vx, vy) = self.values, self.within
        ones = np.ones(self.shape)
        return np.stack([
            x[:, None] * ones, (x**2 + vx)[:, None] * ones,
            y[None, :] * ones, (y**2 + vy)[None, :] * ones,
            np.outer(x, y),
        ])


def correlation_s2(sd: float | None, l2: float, domains: Sequence[Domain]) -> float:
    """``s_h^2``: the estimate's ``sd`` (or ``sqrt(l2)``) in correlation units, carried to ``h``'s units.

    ``h`` is a correlation times ``sd(X) sd(Y)``, so the softening is multiplied by both
    variables' spreads under the uniform base measure (fixed by the domains, so the
    objective does not depend on the answer). ``l2`` is thus read in the estimate's own
    units, as for a probability. In correlation units it is held to the compiler's
    ``[MIN_S2, MAX_S2]`` like every ``s^2`` (an ``sd`` of 1e155 would overflow when squared).
    """
    spread = base_spread(domains[0]) * base_spread(domains[1])
    return float((l2 if sd is None else clamped_s2(sd)) * spread**2)


def pinned_reason(constraints: Sequence[Constraint], domain: Domain, index: int) -> str | None:
    """Why the probability estimates make variable ``index`` constant (one state left), or None.

    ``P(A) = 1`` (or ``>= 1``) rules out every state not wholly inside ``A``; ``P(A) = 0``
    (or ``<= 0``) every state that meets ``A``.
    """
    allowed = np.ones(domain.n_states, dtype=bool)
    pinning = []
    for constraint in constraints:
        if constraint.estimate_type != "probability" or constraint.scope != (index,):
            continue
        weights, target = np.asarray(constraint.feature), constraint.target
        if target == 1.0 and constraint.relation in ("eq", "ge"):
            allowed &= weights == 1.0
        elif target == 0.0 and constraint.relation in ("eq", "le"):
            allowed &= weights == 0.0
        else:
            continue
        pinning.append(constraint.id)
        if allowed.sum() <= 1:
            return (f"variable {domain.name!r} is constant under estimate(s) {', '.join(map(repr, pinning))}, "
                    "so its correlation is undefined")
    return None


# --------------------------------------------------------------------------- h and its linearisation


def moments_of(correlation: CorrelationConstraint, marginals: Sequence[np.ndarray], pair_product: float) -> np.ndarray:
    """``m = (E[X], E[X^2], E[Y], E[Y^2], E[XY])`` from the two marginals and ``E[XY]``."""
    (x, y), (vx, vy) = correlation.values, correlation.within
    px, py = (np.asarray(p, dtype=np.float64) for p in marginals)
    return np.array([px @ x, px @ (x**2 + vx), py @ y, py @ (y**2 + vy), pair_product])


def variances(m: np.ndarray) -> tuple[float, float]:
    """``Var(X)`` and ``Var(Y)`` from the moments (never below 0)."""
    return max(float(m[1] - m[0] ** 2), 0.0), max(float(m[3] - m[2] ** 2), 0.0)


def h_value(r: float, m: np.ndarray) -> float:
    """``h = Cov(X, Y) - r sd(X) sd(Y)``."""
    var_x, var_y = variances(m)
    return float(m[4] - m[0] * m[2] - r * np.sqrt(var_x * var_y))


def h_gradient(r: float, m: np.ndarray) -> np.ndarray:
    """``dh/dm`` (needs both variances positive; the loop checks that before it linearises)."""
    var_x, var_y = (max(v, MIN_VARIANCE) for v in variances(m))
    ratio = np.sqrt(var_y / var_x)  # sd(Y) / sd(X)
    return np.array([
        -m[2] + r * m[0] * ratio,
        -0.5 * r * ratio,
        -m[0] + r * m[2] / ratio,
        -0.5 * r / ratio,
        1.0,
    ])


def correlation_of(m: np.ndarray) -> float:
    """Pearson correlation from the moments; 0 where a variance vanishes (so never NaN)."""
    var_x, var_y = variances(m)
    if var_x <= MIN_VARIANCE or var_y <= MIN_VARIANCE:
        return 0.0
    return float(np.clip((m[4] - m[0] * m[2]) / np.sqrt(var_x * var_y), -1.0, 1.0))


def quantile_product_mean(px: np.ndarray, x: np.ndarray, py: np.ndarray, y: np.ndarray) -> float:
    """``E[XY]`` under the quantile coupling of two discrete marginals (values in the order given).

    With both value arrays ascending this is the comonotone coupling, the largest
    ``E[XY]`` the marginals allow (Hoeffding-Frechet); with one reversed, the smallest.
    """
    cx, cy = np.cumsum(px), np.cumsum(py)
    breaks = np.unique(np.clip(np.concatenate([[0.0], cx, cy, [1.0]]), 0.0, 1.0))
    mids = 0.5 * (breaks[:-1] + breaks[1:])
    i = np.minimum(np.searchsorted(cx, mids, side="right"), len(x) - 1)
    j = np.minimum(np.searchsorted(cy, mids, side="right"), len(y) - 1)
    return float(np.sum(np.diff(breaks) * x[i] * y[j]))


def reachable_range(correlation: CorrelationConstraint, marginals: Sequence[np.ndarray]) -> tuple[float, float]:
    """The smallest and largest correlation any coupling of these two marginals has."""
    (x, y) = correlation.values
    px, py = (np.asarray(p, dtype=np.float64) for p in marginals)
    bounds = []
    for y_order in (slice(None, None, -1), slice(None)):
        product = quantile_product_mean(px, x, py[y_order], y[y_order])
        bounds.append(correlation_of(np.append(moments_of(correlation, marginals, 0.0)[:4], product)))
    return bounds[0], bounds[1]


def unreachable_reason(correlation: CorrelationConstraint, marginals: Sequence[np.ndarray]) -> str | None:
    """Why the marginals of the fit without correlations rule the target out, or None.

    Meeting such a target would mean moving the marginals the other estimates fix (the
    penalty on ``h`` is also met by shrinking a variance towards 0), so it is skipped.
    A target at most :data:`UNREACHED_GAP` beyond the range is kept as a compromise.
    """
    low, high = reachable_range(correlation, marginals)
    r, relation = correlation.correlation, correlation.relation
    beyond = max(low - r if relation in ("eq", "le") else 0.0, r - high if relation in ("eq", "ge") else 0.0)
    if beyond <= UNREACHED_GAP:
        return None
    return (f"correlation {relation} {r:g} is out of reach: with the marginals the other estimates give "
            f"{correlation.names[0]!r} and {correlation.names[1]!r}, every joint has a correlation in "
            f"[{low:.3f}, {high:.3f}]")


def linearised_constraint(correlation: CorrelationConstraint, m0: np.ndarray | None) -> Constraint:
    """The linear pair constraint that replaces ``h`` at the moments ``m0``.

    ``m0 = None`` gives the probe of the first round: a zero feature (its multiplier
    is 0 at the optimum, so the fit is the one without correlations) whose report
    numerator still measures ``E[XY]``.
    """
    tables = correlation.moment_tables()
    if m0 is None:
        feature, target = np.zeros(correlation.shape), 0.0
    else:
        gradient = h_gradient(correlation.correlation, m0)
        feature = np.tensordot(gradient, tables, axes=1)
        target = float(gradient @ m0 - h_value(correlation.correlation, m0))
    return Constraint(
        id=correlation.id, estimate_type="correlation", relation=correlation.relation,
        scope=correlation.scope, feature=feature, target=target, s2=correlation.s2,
        report_numerator=tables[4], report_denominator=np.ones(correlation.shape),
        report_target=correlation.correlation,
    )


def linearised_problem(
    problem: ConstraintSet, points: Sequence[np.ndarray | None]
) -> ConstraintSet:
    """``problem``'s linear constraints, then one linearised constraint per correlation (same order)."""
    extra = [linearised_constraint(c, m0) for c, m0 in zip(problem.correlations, points)]
    return ConstraintSet(problem.domains, [*problem.constraints, *extra], problem.skipped, problem.warnings)


def fitted_moments(problem: ConstraintSet, fitted: FitResult) -> list[np.ndarray]:
    """The five moments of every correlation under a fit of :func:`linearised_problem`."""
    offset = len(problem.constraints)
    moments = []
    for j, correlation in enumerate(problem.correlations):
        marginals = [fitted.marginals[name] for name in correlation.names]
        moments.append(moments_of(correlation, marginals, float(fitted.report_means[offset + j][0])))
    return moments


# --------------------------------------------------------------------------- the outer loop


@attrs.frozen
class CorrelationOutcome:
    """What :func:`fit_problem` returns besides the fit: report rows, skips, warnings and loop facts."""

    fitted: FitResult
    report_rows: list[dict[str, Any]]
    skipped: list[str]
    warnings: list[str]
    info: dict[str, Any]


def fit_fresh_or_warm(hook, problem: ConstraintSet, config: Any, progress: Progress | None,
                      previous: FitResult | None, provisional: bool = False) -> tuple[FitResult, bool, Any]:
    """Compile ``problem`` for the backend and fit it, from ``previous`` where the backend can.

    Returns the fit, whether it was warm-started, and the compiled model. A backend
    without a ``refit`` hook, or one whose ``refit`` returns None, gets a fresh ``fit``.
    """
    model = hook.compile_constraints(problem=problem, config=config)
    if previous is not None:
        warm = hook.refit(fitted=previous, model=model, config=config, progress=progress, provisional=provisional)
        if warm is not None:
            return warm, True, model
    return hook.fit(model=model, config=config, progress=progress, provisional=provisional), False, model


def confirmed(hook, fitted: FitResult, model: Any, config: Any) -> FitResult:
    """``fitted`` after the backend's ``confirm`` hook (unchanged where it adds nothing)."""
    result = hook.confirm(fitted=fitted, model=model, config=config)
    return fitted if result is None else result


def inner_tolerance(config: Any, residual: float, tolerance: float) -> float | None:
    """The inner tolerance of a round whose outer residual is ``residual``; None: the backend's own.

    An inexact Newton forcing term: while the linearisation point is still far from
    the fixed point, a round's fit need only be :data:`FORCING` times as accurate as
    the point is, at most :data:`LOOSEST_INNER`; within :data:`TIGHT_WITHIN`
    ``correlation_tolerance`` of it, every fit is at the backend's own tolerance, so
    the round the loop stops at is. Only a backend whose config names the field
    (``inner_tolerance_field``, e.g. maxent's ``gtol``) is loosened.
    """
    field = getattr(config, "inner_tolerance_field", None)
    if field is None or not np.isfinite(residual) or residual <= TIGHT_WITHIN * tolerance:
        return None
    own = float(getattr(config, field))
    loose = min(LOOSEST_INNER, FORCING * residual)
    return loose if loose > own else None


def settled_within(tolerance: float, fitted: FitResult) -> float:
    """The change of the moments between two rounds below which the loop stops.

    ``tolerance``, or for a sampling backend ``NOISE_Z`` standard errors of its means
    where that is more: two fits at the same linearisation differ by that much by
    noise alone, so rounds past it only redraw the noise.
    """
    return max(tolerance, NOISE_Z * float(fitted.moment_stderr))


def round_config(config: Any, inner: float | None) -> Any:
    """``config`` with its inner tolerance field set to ``inner`` (None: unchanged)."""
    return config if inner is None else attrs.evolve(config, **{config.inner_tolerance_field: inner})


def _correlation_row(correlation: CorrelationConstraint, m: np.ndarray, multiplier: float) -> dict[str, Any]:
    fitted = correlation_of(m)
    return {
        "id": correlation.id, "estimate_type": "correlation", "relation": correlation.relation,
        "target": correlation.correlation, "fitted": fitted, "residual": fitted - correlation.correlation,
        "scaled_residual": fitted - correlation.correlation, "lambda": multiplier,
        "h": h_value(correlation.correlation, m),
    }


def _gap(correlation: CorrelationConstraint, fitted: float) -> float:
    """How far the fitted correlation is from satisfying the estimate (0 when it does)."""
    gap = fitted - correlation.correlation
    if correlation.relation == "le":
        return max(gap, 0.0)
    if correlation.relation == "ge":
        return max(-gap, 0.0)
    return abs(gap)


def constant_variable_reason(correlation: CorrelationConstraint, m: np.ndarray) -> str | None:
    """Why a correlation cannot be linearised at ``m`` (a variance vanishes), or None."""
    for name, variance in zip(correlation.names, variances(m)):
        if variance <= MIN_VARIANCE:
            return (f"variable {name!r} is constant under the other estimates (variance {variance:.1e} "
                    "of its squared span), so its correlation is undefined")
    return None


def first_round_skips(correlations, moments, fitted: FitResult) -> tuple[list[str], list[bool]]:
    """Skip reasons and the active mask after the fit without correlations (constant or out of reach)."""
    skipped, active = [], []
    for correlation, m in zip(correlations, moments):
        reason = constant_variable_reason(correlation, m) or unreachable_reason(
            correlation, [fitted.marginals[name] for name in correlation.names])
        active.append(reason is None)
        if reason is not None:
            skipped.append(f"{correlation.id}: {reason}")
    return skipped, active


def report_rows(correlations, moments, active, multipliers) -> tuple[list[dict[str, Any]], list[str]]:
    """``constraint_report`` rows of the fitted correlations, and a warning for each that misses its target."""
    rows, warnings = [], []
    for correlation, m, on, multiplier in zip(correlations, moments, active, multipliers):
        if not on:
            continue
        row = _correlation_row(correlation, m, float(multiplier))
        rows.append(row)
        gap = _gap(correlation, row["fitted"])
        if gap > UNREACHED_GAP:
            warnings.append(
                f"{correlation.id}: fitted correlation {row['fitted']:.3f} misses the target "
                f"{correlation.relation} {correlation.correlation:g} by {gap:.3f}: the domain and the other "
                "estimates do not let Corr(" + ", ".join(correlation.names) + ") reach it, or conflict with it; "
                "the penalty keeps the fit finite"
            )
    return rows, warnings


def fit_problem(hook, problem: ConstraintSet, config: Any, progress: Progress | None = None) -> CorrelationOutcome:
    """Fit ``problem`` through the backend ``hook``: once without correlations, or the outer loop.

    ``config.correlation_rounds`` bounds the rounds (the first is the fit without
    correlations) and ``config.correlation_tolerance`` is the largest change of any
    correlation's moments (rescaled units) between two rounds at which the loop stops.
    """
    correlations = tuple(problem.correlations)
    if not correlations:
        fitted, _, _ = fit_fresh_or_warm(hook, problem, config, progress, None)
        return CorrelationOutcome(fitted, [], [], [], {})
    max_rounds = int(getattr(config, "correlation_rounds", DEFAULT_ROUNDS))
    tolerance = float(getattr(config, "correlation_tolerance", DEFAULT_TOLERANCE))
    started = time.perf_counter()
    # Every round is provisional: the round the loop stops at is confirmed after it.
    last_config = config
    fitted, _, model = fit_fresh_or_warm(hook, linearised_problem(problem, [None] * len(correlations)), config,
                                         progress, None, provisional=True)
    first_seconds = time.perf_counter() - started
    first_marginals = {name: np.asarray(p, dtype=np.float64).tolist() for name, p in fitted.marginals.items()}
    moments = fitted_moments(problem, fitted)
    skipped, active = first_round_skips(correlations, moments, fitted)
    points = [m.copy() if on else None for m, on in zip(moments, active)]
    damping, last_change, converged, warm_rounds = 1.0, np.inf, not any(active), 0
    # The outer residual before round 2 is |h| at the fit without correlations.
    residual = _max_abs_h(correlations, moments, active)
    mixer = AndersonMixer()
    rounds = [{"round": 1, "max_change": float("nan"), "max_abs_h": residual,
               "damping": damping, "warm": False, "inner_tolerance": None, "seconds": first_seconds}]
    while not converged and len(rounds) < max_rounds:
        round_started = time.perf_counter()
        inner = inner_tolerance(config, residual, tolerance)
        last_config = round_config(config, inner)
        fitted, warm, model = fit_fresh_or_warm(hook, linearised_problem(problem, points), last_config, progress,
                                                fitted, provisional=True)
        warm_rounds += int(warm)
        moments = fitted_moments(problem, fitted)
        change = max(float(np.max(np.abs(m - p))) for m, p, on in zip(moments, points, active) if on)
        if change > OVERSHOOT * last_change:  # the iteration overshoots: move the linearisation point less
            damping = max(0.5 * damping, MIN_DAMPING)
            mixer.reset()
        elif change < last_change:  # back on track: let the step grow again
            damping = min(2.0 * damping, 1.0)
        last_change = residual = change
        # A round fitted at a loosened tolerance never ends the loop: the answer is a full-accuracy fit.
        converged = change <= settled_within(tolerance, fitted) and inner is None
        if not converged:
            points = next_points(mixer, correlations, points, moments, active, damping)
        rounds.append({"round": len(rounds) + 1, "max_change": change,
                       "max_abs_h": _max_abs_h(correlations, moments, active), "damping": damping, "warm": warm,
                       "inner_tolerance": inner, "seconds": time.perf_counter() - round_started})
    fitted = confirmed(hook, fitted, model, last_config)
    multipliers = fitted.lambdas[len(problem.constraints):]
    rows, warnings = report_rows(correlations, moments, active, multipliers)
    if not converged:
        warnings.append(
            f"correlations: the successive linearisation did not settle within {max_rounds} rounds "
            f"(last change of the moments {last_change:.2e} > {settled_within(tolerance, fitted):.1e}: "
            f"correlation_tolerance {tolerance:.1e}, or {NOISE_Z:g} standard errors of a sampling backend's means)"
        )
    info = {
        "rounds": len(rounds), "converged": converged, "warm_rounds": warm_rounds, "history": rounds,
        "first_round_seconds": first_seconds, "seconds": time.perf_counter() - started,
        "first_round_marginals": first_marginals, "n_fitted": sum(active),
    }
    return CorrelationOutcome(fitted, rows, skipped, warnings, info)


class AndersonMixer:
    """Anderson acceleration of the fixed-point map ``point -> fitted moments``.

    Plain successive linearisation converges linearly (ratios of 0.5-0.7 between rounds
    are common on the shared cases); mixing the last few rounds' residuals takes the
    secant step through them, which is what the fixed point is, usually in a few rounds.
    """

    def __init__(self, memory: int = ANDERSON_MEMORY):
        self.memory = memory
        self.reset()

    def reset(self) -> None:
        self.points: list[np.ndarray] = []
        self.images: list[np.ndarray] = []

    def step(self, point: np.ndarray, image: np.ndarray, damping: float) -> np.ndarray:
        """The next point from the current one and its image under the map."""
        self.points.append(point)
        self.images.append(image)
        self.points, self.images = self.points[-(self.memory + 1):], self.images[-(self.memory + 1):]
        residuals = [g - x for g, x in zip(self.images, self.points)]
        if len(residuals) == 1:
            return point + damping * residuals[0]
        d_residual = np.column_stack([residuals[i + 1] - residuals[i] for i in range(len(residuals) - 1)])
        d_image = np.column_stack([self.images[i + 1] - self.images[i] for i in range(len(residuals) - 1)])
        gamma = np.linalg.lstsq(d_residual, residuals[-1], rcond=1e-10)[0]
        mixed_point = point - (np.column_stack([self.points[i + 1] - self.points[i]
                                                for i in range(len(residuals) - 1)]) @ gamma)
        mixed_image = image - d_image @ gamma
        return mixed_point + damping * (mixed_image - mixed_point)


def next_points(mixer: AndersonMixer, correlations, points, moments, active, damping: float) -> list:
    """The next linearisation points: Anderson-mixed, or the damped plain step where mixing leaves the valid moments."""
    on = [j for j, flag in enumerate(active) if flag]
    point = np.concatenate([points[j] for j in on])
    image = np.concatenate([moments[j] for j in on])
    mixed = mixer.step(point, image, damping).reshape(len(on), 5)
    plain = [points[j] + damping * (moments[j] - points[j]) for j in on]
    if not np.all(np.isfinite(mixed)) or any(min(variances(m)) <= MIN_VARIANCE for m in mixed):
        mixer.reset()
        mixed = plain
    out: list = [None] * len(points)
    for j, m in zip(on, mixed):
        out[j] = np.asarray(m)
    return out


def _max_abs_h(correlations, moments, active) -> float:
    values = [abs(h_value(c.correlation, m)) for c, m, on in zip(correlations, moments, active) if on]
    return max(values) if values else 0.0
