"""Pairwise estimates (marginals and conditionals) fitted by smm, checked against the exact answer.

    python examples/maxent_smm_pairwise.py
"""

from __future__ import annotations

import numpy as np
from calibrated_response_plugins import DistributionBuilder
from calibrated_response_plugins.registry import installed_backends

VARIABLES = [
    {"name": "rain", "type": "binary"},
    {"name": "traffic", "type": "binary"},
    {"name": "delay", "type": "continuous", "lower_bound": 0.0, "upper_bound": 60.0},
]


def eq(name, value=True):
    return {"proposition_type": "equality", "variable": name, "variable_type": "binary", "value": value}


ESTIMATES = [
    {"id": "p_rain", "estimate_type": "probability", "probability": 0.3, "proposition": eq("rain")},
    {"id": "p_traffic_rain", "estimate_type": "conditional_probability", "probability": 0.7,
     "proposition": eq("traffic"), "conditions": [eq("rain")]},
    {"id": "p_traffic", "estimate_type": "probability", "probability": 0.45, "proposition": eq("traffic")},
    {"id": "e_delay", "estimate_type": "expectation", "variable": "delay", "expected_value": 15.0},
    {"id": "e_delay_traffic", "estimate_type": "conditional_expectation", "variable": "delay",
     "expected_value": 25.0, "conditions": [eq("traffic")]},
    {"id": "p_long", "estimate_type": "probability", "probability": 0.1, "relation": "le",
     "proposition": {"proposition_type": "inequality", "variable": "delay", "variable_type": "continuous",
                     "threshold": 45.0, "is_lower_bound": True}},
]


def main():
    histogram, info = DistributionBuilder(VARIABLES, ESTIMATES, backend="smm").build("delay", progress=False)
    print(f"smm: converged={info['converged']} in {info['runtime_sec']:.2f} s, {info['n_factors']} factors")
    print(f"{'estimate':<18}{'target':>10}{'smm':>10}")
    for row in info["constraint_report"]:
        print(f"{row['id']:<18}{row['target']:>10.4f}{row['fitted']:>10.4f}")
    if "maxent" in installed_backends():
        _, exact = DistributionBuilder(VARIABLES, ESTIMATES, backend="maxent").build("delay", progress=False)
        for name in info["marginals"]:
            gap = np.abs(np.array(info["marginals"][name]) - np.array(exact["marginals"][name])).max()
            print(f"max |P_smm - P_exact| for {name}: {gap:.4f}")
    print("E[delay] from the histogram:", round(float(np.dot(histogram.bin_probabilities,
          (np.array(histogram.bin_edges[:-1]) + np.array(histogram.bin_edges[1:])) / 2)), 3))


if __name__ == "__main__":
    main()
