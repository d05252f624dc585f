"""The core's backend conformance kit, run against the exact backend."""

from __future__ import annotations

from calibrated_response_plugins.testing import BackendConformance


class TestMaxentConformance(BackendConformance):
    backend = "maxent"
    # The kit's reference is the maxent backend itself, and the fit is deterministic:
    # the two runs agree to the last bit, so the tolerances only absorb float64 rounding.
    tolerance = 1e-12
    residual_tolerance = 1e-12
    # A warm start ends at another point within gtol = 1e-8 of the optimum on the projected
    # gradient; with s^2 = 1e-3 the multipliers, so the marginals, may differ by up to
    # ~gtol / s^2 = 1e-5 (measured 2e-9).
    warm_start_tolerance = 1e-5
