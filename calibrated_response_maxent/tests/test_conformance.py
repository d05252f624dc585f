"""The core's backend conformance kit, run against the exact backend."""

from __future__ import annotations

from calibrated_response_plugins.testing import BackendConformance


class TestMaxentConformance(BackendConformance):
    backend = "maxent"
    # The kit's reference is an independent enumeration solved to a gradient of 1e-12;
    # maxent stops at a projected gradient of gtol = 1e-8, which (the dual's Hessian being
    # at least s^2 = 1e-3) moves a probability by at most ~1e-5 and measures ~4e-9 here.
    # 1e-6 is far above that and far below any modelling error.
    tolerance = 1e-6
    residual_tolerance = 1e-6
    # A warm start ends at another point within gtol = 1e-8 of the optimum on the projected
    # gradient; with s^2 = 1e-3 the multipliers, so the marginals, may differ by up to
    # ~gtol / s^2 = 1e-5 (measured 2e-9).
    warm_start_tolerance = 1e-5
