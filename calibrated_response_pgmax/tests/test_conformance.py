"""The core conformance kit, run against the pgmax backend."""

from __future__ import annotations

from calibrated_response_plugins.testing import BackendConformance


class TestPgmaxConformance(BackendConformance):
    backend = "pgmax"
    # The kit's problem is loopy (festival-rain, festival-temperature, rain-temperature
    # form a triangle), so P(festival) is the Bethe approximation: measured 0.003 off maxent.
    tolerance = 0.01
    # Residuals are compared with expectations in units of their span; the largest gap is
    # e_temp_rain, measured 0.067 degrees C on a 40-degree span (0.0017): Bethe moments give
    # a slightly different l2 compromise than the exact joint. 0.005 leaves 3x headroom.
    residual_tolerance = 0.005
