"""What every case benchmark shares: where the real cases are, and the one |dP(target)| metric.

The runner that fits cases with backends and measures them against ``maxent`` is
:mod:`cases_runner`; this module stays the small part that needs no backend.

Cases. ``benchmarks/cases/`` ships 12 of the project's real elicited problems, so the
tests and a quick report run from a clone. The full set of 240 lives outside the
repository; :func:`cases_directory` picks, in order, ``$CALIBRATED_RESPONSE_CASES``,
the full set at ``../shared/cases`` beside the repository when it is there, and the
shipped subset.

Metric. :func:`target_value` reduces a target marginal to one number on [0, 1]:
``P(true)`` for a binary target, and for a continuous one its mean rescaled by the
domain, ``(E[X] - lower) / (upper - lower)``, the quantity an expectation estimate
constrains (``u_X`` of ``docs/semantics.md``). ``|dP(target)|`` is the absolute
difference of two such values (:func:`target_difference`); a binary and a
continuous target are on the same scale, and a shift of the whole continuous
histogram by one bin of 21 counts as 1/21.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CASES_ENV = "CALIBRATED_RESPONSE_CASES"
SHIPPED_CASES = HERE / "cases"
SHARED_CASES = HERE.parents[1] / "shared" / "cases"


def cases_directory() -> Path:
    """``$CALIBRATED_RESPONSE_CASES``, else the full shared set when present, else the shipped subset."""
    chosen = os.environ.get(CASES_ENV)
    if chosen:
        return Path(chosen)
    return SHARED_CASES if any(SHARED_CASES.glob("*.json")) else SHIPPED_CASES


def case_files(directory: Path | None = None, limit: int | None = None, only: Sequence[str] | None = None) -> list[Path]:
    """Sorted case files of ``directory`` (default :func:`cases_directory`), optionally only the named
    ones (stem or file name), the first ``limit``."""
    files = sorted(Path(directory or cases_directory()).glob("*.json"))
    if only:
        wanted = {Path(name).stem for name in only}
        files = [f for f in files if f.stem in wanted]
    return files if limit is None else files[:limit]


def target_value(marginal: Sequence[float], bin_edges: Sequence[float], binary: bool) -> float:
    """``P(true)`` of a binary target; the mean of a continuous one rescaled to [0, 1] by its domain."""
    p = np.asarray(marginal, dtype=np.float64)
    if binary:
        return float(p[1])
    edges = np.asarray(bin_edges, dtype=np.float64)
    centres = 0.5 * (edges[:-1] + edges[1:])
    return float(p @ (centres - edges[0]) / (edges[-1] - edges[0]))


def target_difference(
    marginal: Sequence[float], reference: Sequence[float], bin_edges: Sequence[float], binary: bool
) -> float:
    """``|dP(target)|``: the absolute difference of the two marginals' :func:`target_value`."""
    return abs(target_value(marginal, bin_edges, binary) - target_value(reference, bin_edges, binary))


def is_binary_target(problem) -> bool:
    """Whether a loaded problem's target (default: its first variable) is binary."""
    target = problem.target_variable or problem.variables[0].name
    return next(v.type for v in problem.variables if v.name == target) == "binary"
