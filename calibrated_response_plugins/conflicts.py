"""A warning when the estimates conflict: the fitted joint meets them only as a compromise.

At the optimum of the regularised dual ``E[g_k] - c_k = -s_k^2 lambda_k``: estimates that
can all hold are met to within ``s_k^2 |lambda_k|`` (1e-3 times a modest multiplier),
so a residual of several percentage points means no distribution meets them all, and
the answer is the weighted compromise between them. The test reads the constraint
report (any backend), in each estimate's own terms scaled to its variable's span.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

# 0.05 of a probability (or of a variable's span): consistent estimates with the default
# l2 term miss by at most about 1e-3 |lambda|, so this takes multipliers past 50 (the
# real conflicting problem behind this warning had residuals of 0.12-0.30, |lambda| 131).
CONFLICT_RESIDUAL = 0.05
NAMED_CONSTRAINTS = 5


def violation(row: Mapping[str, Any]) -> float:
    """How far the fitted value misses the estimate, in span units (0 for a satisfied le / ge; NaN: none)."""
    residual = row.get("scaled_residual")
    if residual is None or not math.isfinite(float(residual)):
        return 0.0
    residual = float(residual)
    relation = row.get("relation", "eq")
    if relation == "ge":
        return max(-residual, 0.0)
    if relation == "le":
        return max(residual, 0.0)
    return abs(residual)


def conflict_warnings(rows: Sequence[Mapping[str, Any]], threshold: float = CONFLICT_RESIDUAL) -> list[str]:
    """One warning naming the worst-missed estimates when any misses by more than ``threshold``; else none."""
    missed = sorted((row for row in rows if violation(row) > threshold), key=violation, reverse=True)
    if not missed:
        return []
    named = "; ".join(
        f"{row['id']} (target {float(row['target']):.4g}, fitted {float(row['fitted']):.4g})"
        for row in missed[:NAMED_CONSTRAINTS]
    )
    more = f" and {len(missed) - NAMED_CONSTRAINTS} more" if len(missed) > NAMED_CONSTRAINTS else ""
    return [
        f"the estimates conflict: no distribution meets them all, so the answer is a compromise between them; "
        f"{len(missed)} estimate(s) miss by more than {threshold:g} of their range: {named}{more}"
    ]
