"""Estimates whose scope has three variables become triple factors; smm against the exact answer.

    python examples/maxent_smm_triples.py
"""

from __future__ import annotations

import numpy as np
from calibrated_response_plugins import DistributionBuilder
from calibrated_response_plugins.registry import installed_backends

VARIABLES = [
    {"name": "launch", "type": "binary"},
    {"name": "funding", "type": "binary"},
    {"name": "team_size", "type": "continuous", "lower_bound": 0.0, "upper_bound": 50.0},
    {"name": "revenue", "type": "continuous", "lower_bound": 0.0, "upper_bound": 10.0},
]


def eq(name, value=True):
    return {"proposition_type": "equality", "variable": name, "variable_type": "binary", "value": value}


def gt(name, threshold):
    return {"proposition_type": "inequality", "variable": name, "variable_type": "continuous",
            "threshold": threshold, "is_lower_bound": True}


ESTIMATES = [
    {"id": "p_funding", "estimate_type": "probability", "probability": 0.5, "proposition": eq("funding")},
    {"id": "e_team", "estimate_type": "expectation", "variable": "team_size", "expected_value": 20.0},
    {"id": "p_launch", "estimate_type": "probability", "probability": 0.4, "proposition": eq("launch")},
    # triple scopes: launch | funding and a large team; revenue | launch and funding
    {"id": "p_launch_funded_big", "estimate_type": "conditional_probability", "probability": 0.85,
     "proposition": eq("launch"), "conditions": [eq("funding"), gt("team_size", 30.0)]},
    {"id": "e_revenue_launch_funded", "estimate_type": "conditional_expectation", "variable": "revenue",
     "expected_value": 6.0, "conditions": [eq("launch"), eq("funding")]},
    {"id": "e_revenue", "estimate_type": "expectation", "variable": "revenue", "expected_value": 3.0},
]


def main():
    _, info = DistributionBuilder(VARIABLES, ESTIMATES, backend="smm").build("revenue", progress=False)
    print(f"smm: converged={info['converged']} in {info['runtime_sec']:.2f} s, {info['n_factors']} factors")
    exact = None
    if "maxent" in installed_backends():
        _, exact = DistributionBuilder(VARIABLES, ESTIMATES, backend="maxent").build("revenue", progress=False)
    print(f"{'estimate':<26}{'target':>9}{'smm':>9}" + (f"{'exact':>9}" if exact else ""))
    for k, row in enumerate(info["constraint_report"]):
        line = f"{row['id']:<26}{row['target']:>9.4f}{row['fitted']:>9.4f}"
        if exact:
            line += f"{exact['constraint_report'][k]['fitted']:>9.4f}"
        print(line)
    if exact:
        gap = max(np.abs(np.array(info["marginals"][n]) - np.array(exact["marginals"][n])).max() for n in info["marginals"])
        print(f"largest marginal difference smm vs exact: {gap:.4f}")


if __name__ == "__main__":
    main()
