"""The one case runner (``cases_runner.py``): its refused and error records, its cache, and smm against maxent.

    python -m pytest benchmarks/test_cases_runner.py -q

On the shipped cases (``benchmarks/cases/``), whatever ``$CALIBRATED_RESPONSE_CASES`` says,
so the expectations below are about known files.
"""

from __future__ import annotations

import json

import attrs
import pytest

from calibrated_response_plugins.registry import installed_backends

from bench_smm_accuracy import RESIDUAL_TOLERANCE, TARGET_TOLERANCE, compare
from cases_runner import REFERENCE, read_cache, run_case, run_cases, target_gap
from harness import SHIPPED_CASES

SMALLEST = SHIPPED_CASES / "fbarch_tiny_20.json"  # 4 variables, a joint of 168 states
LARGEST = SHIPPED_CASES / "examples_pkl_0.json"  # a joint of 130,691,232 states

needs_maxent = pytest.mark.skipif(REFERENCE not in installed_backends(), reason="the maxent backend is not installed")


@needs_maxent
def test_size_guard_refuses_before_fitting():
    result = run_case(LARGEST, REFERENCE)
    assert (result.status, result.seconds, result.info["n_states"]) == ("refused", 0.0, 130_691_232)
    assert "max_states=4,000,000" in result.message
    # a config reaches the backend: a guard below the smallest case's 168 states refuses it too
    assert run_case(SMALLEST, REFERENCE, {"max_states": 100}).status == "refused"


@needs_maxent
def test_failures_are_recorded_not_raised(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"variables": [', encoding="utf-8")
    result = run_case(broken, REFERENCE)
    assert result.status == "error" and result.message.startswith("ModelInputError: ")
    assert run_case(SMALLEST, "no-such-backend").status == "error"


@needs_maxent
def test_reference_answers_come_from_the_cache(tmp_path):
    cache = tmp_path / "exact.json"
    (fitted,) = run_cases([SMALLEST], [REFERENCE], cache=cache)
    assert fitted.status == "fitted" and fitted.converged and 0.0 <= fitted.p_target <= 1.0
    assert read_cache(cache) == {SMALLEST.name: fitted}
    # a second run reads the cached answer instead of fitting: a doctored one comes back as written
    doctored = attrs.evolve(fitted, p_target=0.5)
    cache.write_text(json.dumps({SMALLEST.name: attrs.asdict(doctored)}), encoding="utf-8")
    assert run_cases([SMALLEST], [REFERENCE], cache=cache)[0].p_target == 0.5
    # ... but not for other settings of the reference, and an entry of another shape is fitted again
    assert run_cases([SMALLEST], [REFERENCE], {REFERENCE: {"gtol": 1e-9}}, cache=cache)[0].p_target != 0.5
    cache.write_text(json.dumps({SMALLEST.name: {"target": [0.5, 0.5], "refused": False}}), encoding="utf-8")
    assert run_cases([SMALLEST], [REFERENCE], cache=cache)[0].p_target == pytest.approx(fitted.p_target)


@needs_maxent
@pytest.mark.skipif("smm" not in installed_backends(), reason="the smm backend is not installed")
def test_smm_against_maxent_on_a_shipped_case():
    seen = []
    results = run_cases([SMALLEST, LARGEST], ["smm"], on_case=seen.append, where_reference_fits=True)
    # the reference refuses the large case, so smm is not run on it (nothing to compare with)
    assert [sorted(row) for row in seen] == [["maxent", "smm"], ["maxent"]]
    assert [r.status for r in results] == ["fitted", "fitted", "refused"]
    smm, exact = seen[0]["smm"], seen[0]["maxent"]
    # The tolerances the project sets for smm against the exact backend on the real cases
    # (bench_smm_accuracy.py: 0.01 on the target, 0.02 on scaled residuals). smm's default fit
    # is seeded; on this case it measured 3e-4 and 2e-3, so a Monte Carlo wobble stays far
    # inside, while a broken fit (uniform marginals put P(true) near 0.5 against maxent's
    # 0.0065) does not.
    assert smm.converged and target_gap(smm, exact) <= TARGET_TOLERANCE
    accuracy = compare(smm, exact)
    assert accuracy.target_gap == target_gap(smm, exact) and accuracy.residual_gap <= RESIDUAL_TOLERANCE
    assert len(smm.residuals) == len(exact.residuals) == 10 and smm.residual_ids == exact.residual_ids
