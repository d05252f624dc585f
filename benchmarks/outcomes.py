"""Counts of benchmark outcomes by status, shared by the case scripts and the report."""

from __future__ import annotations

from collections.abc import Iterable


def status_counts(records: Iterable) -> dict[str, int]:
    """``cases``, ``fitted``, ``converged`` (among the fitted), ``refused`` and ``errors``.

    ``records`` carry a ``status`` (``"fitted"``, ``"refused"`` or ``"error"``) and a
    ``converged`` flag.
    """
    records = list(records)
    fitted = [r for r in records if r.status == "fitted"]
    return {
        "cases": len(records),
        "fitted": len(fitted),
        "converged": sum(bool(r.converged) for r in fitted),
        "refused": sum(r.status == "refused" for r in records),
        "errors": sum(r.status == "error" for r in records),
    }
