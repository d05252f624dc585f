"""The cross-backend benchmarks and the report helpers keep working (fast: maxent only, smallest sizes)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
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


def test_report_sections_are_replaced_in_place_and_carried_over():
    sections = load_module("sections")
    text = sections.upsert_section("# Report\n\nbody\n", "scale", "first")
    assert text == "# Report\n\nbody\n\n<!-- section:scale:start -->\nfirst\n<!-- section:scale:end -->\n"
    text = sections.upsert_section(sections.upsert_section(text, "thrml", "peer"), "scale", "second")
    assert list(sections.sections_of(text)) == ["scale", "thrml"] and "first" not in text and "second" in text
    # report.py rewrites the page: the sections it does not write come along, in order
    carried = sections.carry_sections(text, "# Report\n\nnew body\n")
    assert carried.startswith("# Report\n\nnew body\n") and sections.sections_of(carried) == sections.sections_of(text)


def test_scale_marginal_errors_and_exponent():
    scale = load_module("scale")
    # two variables: a binary one and a three-state one, flattened with offsets [0, 2, 5]
    mine = (np.array([0.7, 0.3, 0.2, 0.5, 0.3]), np.array([0, 2, 5]))
    reference = (np.array([0.6, 0.4, 0.2, 0.45, 0.35]), np.array([0, 2, 5]))
    errors = scale.marginal_errors(mine, reference)
    assert errors["max_marginal_error"] == pytest.approx(0.1)
    assert errors["median_marginal_error"] == pytest.approx(0.075)  # median of 0.1 and 0.05
    with pytest.raises(ValueError, match="different variables"):
        scale.marginal_errors(mine, (reference[0][:4], np.array([0, 2, 4])))
    # t = 2 n^1.5 exactly: the least-squares slope is 1.5 to rounding
    slope, intercept = scale.fitted_exponent([10, 100, 1000], [2 * 10**1.5, 2 * 100**1.5, 2 * 1000**1.5])
    assert slope == pytest.approx(1.5, abs=1e-9) and intercept == pytest.approx(np.log10(2), abs=1e-9)


def test_scale_records_merge_by_graph_size_and_backend():
    scale = load_module("scale")
    old = [{"graph": "tree", "n_variables": 10, "label": "smm", "seconds": 1.0},
           {"graph": "tree", "n_variables": 10, "label": "pgmax", "seconds": 2.0}]
    new = [{"graph": "tree", "n_variables": 10, "label": "smm", "seconds": 3.0}]
    merged = scale.merge_records(old, new)
    assert [(r["label"], r["seconds"]) for r in merged] == [("pgmax", 2.0), ("smm", 3.0)]


@pytest.mark.skipif("maxent" not in installed_backends(), reason="the maxent backend is not installed")
def test_scale_benchmark_runs_end_to_end(tmp_path):
    """scale.py on 5-variable problems with maxent (exact) as backend and reference: JSON, section, figure."""
    out, report = tmp_path / "scale.json", tmp_path / "REPORT.md"
    report.write_text("# Benchmark report\n\nexisting text\n", encoding="utf-8")
    command = [sys.executable, str(BENCHMARKS / "scale.py"), "--sizes", "5", "--graphs", "tree,loopy",
               "--backends", "maxent", "--reference-backend", "maxent", "--out", str(out),
               "--cache", str(tmp_path / "cache"), "--report", str(report), "--figure", str(tmp_path / "t.png")]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    records = json.loads(out.read_text(encoding="utf-8"))["records"]
    assert [(r["graph"], r["n_variables"], r["status"]) for r in records] == [("loopy", 5, "ok"), ("tree", 5, "ok")]
    for record in records:
        # the reference is this very fit, so its error is zero by construction; its residual is the
        # exact optimum's (a few 1e-3: the synthetic estimates are only close to consistent)
        assert record["converged"] and record["max_marginal_error"] == 0.0 and record["max_residual"] < 0.01
        assert record["seconds"] > 0 and 0 < record["peak_rss_gb"] < 8 and record["iterations"] > 0
    text = report.read_text(encoding="utf-8")
    assert text.startswith("# Benchmark report\n\nexisting text\n")
    assert "<!-- section:scale:start -->" in text and "| tree | 5 | `maxent` |" in text
    assert (tmp_path / "t.png").stat().st_size > 0


def test_gpu_report_reads_what_gpu_sh_writes(tmp_path):
    gpu_report = load_module("gpu_report")
    assert "No accelerator was lent" in gpu_report.render_section(None)
    (tmp_path / "machine.txt").write_text("NVIDIA H200, 143771 MiB\n", encoding="utf-8")
    (tmp_path / "steps.jsonl").write_text(
        '{"step": "install", "exit": 0, "seconds": 5, "limit": 60}\n'
        '{"step": "scale 10000", "exit": 124, "seconds": 120, "limit": 120}\n', encoding="utf-8")
    record = {"peer": "smm", "status": "ok", "states": 2, "n_vars": 1_000_000, "n_pairs": 2_500_000,
              "chains": 256, "site_updates_per_s": 3.5e10}
    (tmp_path / "throughput_k2.json").write_text(json.dumps({"records": [record]}), encoding="utf-8")
    lines = gpu_report.rate_lines(gpu_report.collect(tmp_path))
    assert lines[0].endswith("35 site updates / ns (goal >= 30)")
    assert lines[1] == "step 'scale 10000' exited 124 after 120 s (limit 120 s; 124 is a timeout)"
    assert "NVIDIA H200" in gpu_report.render_section(gpu_report.collect(tmp_path))


def test_scale_fit_past_its_timeout_is_recorded_not_fatal(tmp_path):
    scale = load_module("scale")
    spec = scale.FitSpec("tree", 5, "maxent", "maxent")
    record = scale.run_fit(spec, tmp_path, timeout_s=0.01)  # no Python process starts that fast
    assert record["status"] == "timeout" and record["key"] == spec.key
    reference = {**record, "label": "pgmax", "key": "other"}
    assert "max_marginal_error" not in scale.with_accuracy(record, reference, tmp_path)
    assert "timeout" in scale.summary_line(record)
