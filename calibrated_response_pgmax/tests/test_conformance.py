"""The core conformance kit, run against the pgmax backend."""

from __future__ import annotations

from calibrated_response_plugins.testing import BackendConformance


class TestPgmaxConformance(BackendConformance):
    backend = "pgmax"
    # The kit's problem is loopy (festival-rain, festival-temperature, rain-temperature
    # form a triangle), so P(festival) is the Bethe approximation: measured 0.003 off maxent.
    tolerance = 0.01
    # Residuals are in each estimate's own units; the largest gap is e_temp_rain, measured
    # 0.067 degrees C on a 40-degree span (Bethe moments give a slightly different l2
    # compromise than the exact joint). 0.1 degrees is 0.25% of that span.
    residual_tolerance = 0.1
