"""The cross-backend benchmarks and the report helpers keep working (fast: maxent only, smallest sizes)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from calibrated_response_plugins import compile_problem, installed_backends

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


def load_module(name: str):
    """Import a module of ``benchmarks/`` (not a package) by file path."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif("maxent" not in installed_backends(), reason="the maxent backend is not installed")
def test_smallest_benchmarks_run():
    command = [
        sys.executable, "-m", "pytest", str(BENCHMARKS / "test_bench_backends.py"),
        "-k", "maxent and (case-5vars or 100vars)", "--benchmark-disable", "-q", "-rs", "-p", "no:randomly",
    ]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    if load_module("conftest").cases_directory().is_dir():
        assert "1 passed" in completed.stdout, completed.stdout


def test_synthetic_problem_is_deterministic_and_compiles_whole():
    synthetic = load_module("synthetic")
    first, second = synthetic.synthetic_problem(100), synthetic.synthetic_problem(100)
    assert first == second and (first.edges == second.edges).all()
    assert first.n_edges == 149 and first.n_variables == 100
    constraints = compile_problem(first.variables, first.estimates)
    assert len(constraints.constraints) == 100 + first.n_edges and not constraints.skipped


def test_report_rewrites_only_the_headline_region():
    report = load_module("report")
    text = f"intro\n{report.HEADLINE_START}\nold table\n{report.HEADLINE_END}\noutro\n"
    assert report.replace_between_markers(text, "new table") == (
        f"intro\n{report.HEADLINE_START}\nnew table\n{report.HEADLINE_END}\noutro\n"
    )
    with pytest.raises(ValueError, match="markers"):
        report.replace_between_markers("no markers here", "table")


def test_report_target_probability():
    report = load_module("report")
    assert report.target_probability([0.3, 0.7], [0.0, 0.5, 1.0], binary=True) == 0.7
    # a continuous target on [10, 30] with all mass in the top bin [20, 30]: mean 25 -> 0.75
    assert report.target_probability([0.0, 1.0], [10.0, 20.0, 30.0], binary=False) == pytest.approx(0.75)


def test_shipped_cases_are_real_cases_that_load_and_compile():
    harness = load_module("harness")
    shipped = sorted(harness.SHIPPED_CASES.glob("*.json"))
    assert len(shipped) == 12
    from calibrated_response_plugins import load_problem

    for path in shipped:
        problem = load_problem(path)
        assert compile_problem(problem.variables, problem.estimates).constraints, path.name
        shared = harness.SHARED_CASES / path.name
        if shared.is_file():  # a verbatim copy of the shared case of that name
            assert shared.read_bytes() == path.read_bytes(), path.name


def test_cases_directory_prefers_the_environment_then_the_shared_set(monkeypatch, tmp_path):
    harness = load_module("harness")
    monkeypatch.setenv(harness.CASES_ENV, str(tmp_path))
    assert harness.cases_directory() == tmp_path
    monkeypatch.delenv(harness.CASES_ENV)
    expected = harness.SHARED_CASES if any(harness.SHARED_CASES.glob("*.json")) else harness.SHIPPED_CASES
    assert harness.cases_directory() == expected


def test_one_target_metric_for_both_kinds():
    harness = load_module("harness")
    edges = [0.0, 10.0, 20.0, 30.0, 40.0]
    # a binary target: the difference of P(true)
    assert harness.target_difference([0.4, 0.6], [0.5, 0.5], [0.0, 0.5, 1.0], binary=True) == pytest.approx(0.1)
    # a continuous target: the rescaled means 0.125 and 0.375 differ by one bin of four, 0.25
    assert harness.target_difference([1, 0, 0, 0], [0, 1, 0, 0], edges, binary=False) == pytest.approx(0.25)
    # the same mean from two shapes is no difference: the metric reads the mean, not the bins
    assert harness.target_difference([0.5, 0, 0, 0.5], [0, 0.5, 0.5, 0], edges, binary=False) == pytest.approx(0.0)
