"""The core's backend conformance kit, run against the exact backend."""

from __future__ import annotations

from calibrated_response_plugins.testing import BackendConformance


class TestMaxentConformance(BackendConformance):
    backend = "maxent"
    # The kit's reference is the maxent backend itself, and the fit is deterministic:
    # the two runs agree to the last bit, so the tolerances only absorb float64 rounding.
    tolerance = 1e-12
    residual_tolerance = 1e-12
