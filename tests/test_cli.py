"""The ``calibrated-response`` command line: formatting helpers, plotting and both commands."""

import json
import sys
import types
from pathlib import Path

import attrs
import numpy as np
import pytest

from calibrated_response_plugins import cli
from calibrated_response_plugins.config import CoreConfig
from calibrated_response_plugins.distribution import HistogramDistribution
from calibrated_response_plugins.registry import UnknownBackendError, register_backend, unregister_backend
from calibrated_response_plugins.testing import UniformBackend

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def binary_hist(p_true):
    return HistogramDistribution([0.0, 0.5, 1.0], [1.0 - p_true, p_true])


def continuous_hist():
    # Uniform on [0, 10] in 4 bins: mean 5, quantile q at 10 q.
    return HistogramDistribution.uniform(0.0, 10.0, n_bins=4)


REPORT_ROWS = [
    {"id": "P_rain", "estimate_type": "probability", "relation": "eq", "target": 0.3, "fitted": 0.30012, "residual": 0.00012},
    {
        "id": "P_target = True_given_a_very_long_condition_name",
        "estimate_type": "conditional_probability",
        "relation": "ge",
        "target": 0.7,
        "fitted": float("nan"),
        "residual": None,
    },
]


def fake_info(**overrides):
    info = {
        "target_variable": "rain",
        "backend": "fake",
        "runtime_sec": 1.23456,
        "converged": True,
        "constraint_report": REPORT_ROWS,
        "skipped_constraints": ["C_ab: correlation estimates are not supported"],
        "warnings": ["E_count: expected value beyond the outer bin centres"],
        "bin_edges_list": [[0.0, 0.5, 1.0], [0.0, 2.5, 5.0, 7.5, 10.0]],
        "marginals": {"rain": np.array([0.7, 0.3]), "temp": np.full(4, 0.25)},
        "history": {"loss": [np.float64(1.5), np.float32(0.25)]},
        "config": CoreConfig(),
        "variable_names": ["rain", "temp"],
    }
    info.update(overrides)
    return info


# ---------------------------------------------------------------- formatting


def test_format_number():
    assert cli.format_number(0.123456) == "0.1235"
    assert cli.format_number(np.float32(2.0)) == "2"
    assert cli.format_number(None) == "-"
    assert cli.format_number(float("nan")) == "-"
    assert cli.format_number("abc") == "-"


def test_truncate():
    assert cli.truncate("short", 10) == "short"
    assert cli.truncate("abcdefghijkl", 5) == "abcd…"
    assert len(cli.truncate("x" * 100, 28)) == 28


def test_binary_detection():
    variables = [
        types.SimpleNamespace(name="rain", type="binary"),
        types.SimpleNamespace(name="flag", type=types.SimpleNamespace(value="BINARY")),
        types.SimpleNamespace(name="temp", type="continuous"),
    ]
    assert cli.binary_variable_names(variables) == {"rain", "flag"}
    assert cli.is_binary_histogram(binary_hist(0.4))
    assert not cli.is_binary_histogram(continuous_hist())
    assert not cli.is_binary_histogram(HistogramDistribution([0.0, 0.5, 2.0], [0.5, 0.5]))


def test_target_summary_binary():
    text = cli.format_target_summary("rain", binary_hist(0.3), binary=True)
    assert text.splitlines() == ["target: rain (binary)", "  P(true) = 0.3000"]


def test_target_summary_continuous():
    text = cli.format_target_summary("temp", continuous_hist(), binary=False)
    lines = text.splitlines()
    assert lines[0] == "target: temp (continuous)"
    # Uniform on [0, 10]: mean 5, std 10 / sqrt(12) = 2.887.
    assert lines[1] == "  mean 5  std 2.887"
    # Quantiles of a uniform on [0, 10] are 10 q.
    assert lines[2] == "  q05 0.5  q25 2.5  q50 5  q75 7.5  q95 9.5"


def test_constraint_report_is_aligned_and_truncates_ids():
    text = cli.format_constraint_report(REPORT_ROWS, id_width=20)
    lines = text.splitlines()
    assert lines[0] == "constraints (2 fitted):"
    header, first, second = lines[1:]
    assert header.split() == ["id", "type", "relation", "target", "fitted", "residual"]
    assert first.split() == ["P_rain", "probability", "eq", "0.3", "0.3001", "0.00012"]
    assert second.split() == ["P_target", "=", "True_giv…", "conditional_probability", "ge", "0.7", "-", "-"]
    # Every column starts at the same offset on every line.
    for column in ("type", "relation"):
        start = header.index(column)
        assert first[start - 2 : start] == "  " and first[start] != " "
        assert second[start - 2 : start] == "  " and second[start] != " "
    # Numbers are right-aligned: rows (without trailing spaces) end together.
    assert len(header) == len(first) == len(second)


def test_constraint_report_empty():
    assert cli.format_constraint_report([]) == "constraints: none fitted"


def test_messages():
    assert cli.format_messages("skipped", []) == "skipped: none"
    assert cli.format_messages("warnings", ["a", "b"]) == "warnings (2):\n  - a\n  - b"


def test_header():
    text = cli.format_header("Will it rain?", {"backend": "smm", "runtime_sec": 1.234, "converged": False})
    assert text == "question: Will it rain?\nbackend: smm   runtime: 1.23 s   converged: no"
    assert cli.format_header(None, {}) == "backend: -   runtime: -   converged: -"


def test_header_says_why_auto_chose_the_backend():
    info = {"backend": "maxent", "runtime_sec": 0.5, "converged": True,
            "backend_reason": "auto: 84 joint states: the exact solve is expected faster than smm"}
    assert cli.format_header(None, info) == (
        "backend: maxent   runtime: 0.50 s   converged: yes\n"
        "  (auto: 84 joint states: the exact solve is expected faster than smm)"
    )


def test_fit_report_has_every_section():
    text = cli.format_fit_report("Will it rain?", "rain", binary_hist(0.3), fake_info(), binary=True)
    assert "question: Will it rain?" in text
    assert "backend: fake   runtime: 1.23 s   converged: yes" in text
    assert "P(true) = 0.3000" in text
    assert "constraints (2 fitted):" in text
    assert "skipped (1):\n  - C_ab: correlation estimates are not supported" in text
    assert "warnings (1):\n  - E_count: expected value beyond the outer bin centres" in text


def test_format_backends():
    assert cli.format_backends({}) == "no backends installed"
    assert cli.format_backends({"smm": "calibrated-response-smm 0.1", "maxent": "x 1"}) == (
        "maxent  x 1\nsmm     calibrated-response-smm 0.1"
    )


# ---------------------------------------------------------------------- JSON


def test_json_safe_converts_numpy_and_drops_the_rest():
    @attrs.frozen
    class Settings:
        rate: float = 0.5

    value = {
        "array": np.arange(3, dtype=np.int32),
        "matrix": np.eye(2),
        "scalar": np.float32(0.5),
        "flag": np.bool_(True),
        "nan": float("nan"),
        "inf": np.float64(np.inf),
        "tuple": (1, "a", object()),
        "function": len,
        "hist": binary_hist(0.25),
        "settings": Settings(),
        3: "int key",
        (1, 2): "tuple key is dropped",
    }
    result = cli.json_safe(value)
    assert result == {
        "array": [0, 1, 2],
        "matrix": [[1.0, 0.0], [0.0, 1.0]],
        "scalar": 0.5,
        "flag": True,
        "nan": None,
        "inf": None,
        "tuple": [1, "a"],
        "hist": {"bin_edges": [0.0, 0.5, 1.0], "bin_probabilities": [0.75, 0.25]},
        "settings": {"rate": 0.5},
        "3": "int key",
    }
    json.dumps(result, allow_nan=False)
    assert type(result["array"][0]) is int and type(result["scalar"]) is float
    assert cli.json_safe(object()) is None


def test_output_document_is_strict_json():
    marginals = {"rain": binary_hist(0.3), "temp": continuous_hist()}
    document = cli.build_output_document("rain", marginals, fake_info())
    text = json.dumps(document, allow_nan=False)
    again = json.loads(text)
    assert again["target_variable"] == "rain"
    assert again["marginals"]["rain"] == {"bin_edges": [0.0, 0.5, 1.0], "bin_probabilities": [0.7, 0.3]}
    assert again["info"]["marginals"]["temp"] == [0.25] * 4
    assert again["info"]["config"]["max_bins"] == 21
    assert again["info"]["constraint_report"][1]["fitted"] is None
    assert again["info"]["history"]["loss"] == [1.5, 0.25]


# ---------------------------------------------------------------------- plot


def test_plot_marginals_writes_png(tmp_path):
    marginals = {
        "temp": continuous_hist(),
        "rain": binary_hist(0.3),
        "wind": HistogramDistribution.from_samples(np.linspace(0, 1, 50), n_bins=5),
        "snow": binary_hist(0.1),
    }
    path = cli.plot_marginals(marginals, tmp_path / "marginals.png", target="rain")
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert path.stat().st_size > 1000


def test_plot_single_marginal(tmp_path):
    path = cli.plot_marginals({"x": continuous_hist()}, tmp_path / "one.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_plot_rejects_empty(tmp_path):
    with pytest.raises(ValueError, match="no marginals"):
        cli.plot_marginals({}, tmp_path / "none.png")


def test_marginal_titles():
    assert cli.marginal_title("rain", binary_hist(0.3), True, is_target=True) == "rain (target)\nP(true) = 0.300"
    assert cli.marginal_title("temp", continuous_hist(), False) == "temp\nmean = 5"


def test_plot_without_matplotlib_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(cli.PlotDependencyError, match=r'pip install "calibrated-response-plugins\[plot\]"'):
        cli.plot_marginals({"x": continuous_hist()}, tmp_path / "x.png")


# ------------------------------------------------------------------- parsing


def test_parse_config_options():
    assert cli.parse_config_options(None) is None
    assert cli.parse_config_options([]) is None
    options = cli.parse_config_options(
        ["num_chains=512", "optimizer=adam", "lr=1e-2", "verbose=true", "sizes=[1, 2]", "note=a=b", "empty="]
    )
    assert options == {
        "num_chains": 512,
        "optimizer": "adam",
        "lr": 0.01,
        "verbose": True,
        "sizes": [1, 2],
        "note": "a=b",
        "empty": "",
    }


@pytest.mark.parametrize("item", ["novalue", "=5"])
def test_parse_config_rejects_missing_key_or_equals(item):
    with pytest.raises(ValueError, match="KEY=VALUE"):
        cli.parse_config_options([item])


def test_error_message_is_one_line():
    assert cli.error_message(FileNotFoundError(2, "No such file or directory", "p.json")) == (
        "p.json: No such file or directory"
    )
    assert cli.error_message(UnknownBackendError("unknown backend 'x'; installed backends: none")) == (
        "unknown backend 'x'; installed backends: none"
    )
    assert cli.error_message(ValueError("two\nlines")) == "two lines"


# ------------------------------------------------- commands with a fake builder


class FakeBuilder:
    """Stands in for DistributionBuilder; records its arguments."""

    calls = []

    def __init__(self, variables, estimates, backend="smm", config=None):
        FakeBuilder.calls.append({"variables": variables, "estimates": estimates, "backend": backend, "config": config})

    def build(self, target_variable=None, progress=True):
        FakeBuilder.calls[-1].update(target_variable=target_variable, progress=progress)
        info = fake_info(target_variable=target_variable)
        return binary_hist(0.3) if target_variable == "rain" else continuous_hist(), info

    def get_all_marginals(self, info):
        return {"rain": binary_hist(0.3), "temp": continuous_hist()}


FAKE_PROBLEM = types.SimpleNamespace(
    variables=[types.SimpleNamespace(name="rain", type="binary"), types.SimpleNamespace(name="temp", type="continuous")],
    estimates=["e1"],
    target_variable="rain",
    question="Will it rain tomorrow?",
)


@pytest.fixture
def fake_fit(monkeypatch):
    FakeBuilder.calls = []
    loaded = []

    def fake_load(path):
        loaded.append(path)
        return FAKE_PROBLEM

    monkeypatch.setattr(cli, "DistributionBuilder", FakeBuilder)
    monkeypatch.setattr(cli, "load_problem", fake_load)
    return loaded


def test_fit_prints_report(fake_fit, capsys):
    code = cli.main(["fit", "problem.json", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0
    assert err == ""
    assert fake_fit == ["problem.json"]
    call = FakeBuilder.calls[0]
    assert call["backend"] == "auto" and call["config"] is None
    assert call["target_variable"] == "rain" and call["progress"] is False
    assert "question: Will it rain tomorrow?" in out
    assert "P(true) = 0.3000" in out
    assert "constraints (2 fitted):" in out
    assert "skipped (1):" in out and "warnings (1):" in out


def test_fit_passes_backend_target_and_config(fake_fit, capsys):
    code = cli.main(
        ["fit", "problem.json", "--backend", "maxent", "--target", "temp", "--config", "num_chains=512", "optimizer=adam"]
    )
    out, _ = capsys.readouterr()
    assert code == 0
    call = FakeBuilder.calls[0]
    assert call["backend"] == "maxent"
    assert call["target_variable"] == "temp"
    assert call["progress"] is True
    assert call["config"] == {"num_chains": 512, "optimizer": "adam"}
    assert "target: temp (continuous)" in out
    assert "q05 0.5  q25 2.5  q50 5  q75 7.5  q95 9.5" in out


def test_fit_passes_checkpoint_as_config(fake_fit, capsys):
    assert cli.main(["fit", "p.json", "--quiet", "--checkpoint", "ck", "--config", "num_chains=512"]) == 0
    assert FakeBuilder.calls[0]["config"] == {"num_chains": 512, "checkpoint_dir": "ck"}
    assert cli.main(["fit", "p.json", "--quiet", "--checkpoint", "ck"]) == 0
    assert FakeBuilder.calls[1]["config"] == {"checkpoint_dir": "ck"}


def test_checkpoint_with_a_backend_without_it_names_the_option(tmp_path, capsys):
    problem = Path(__file__).resolve().parents[1] / "examples" / "problems" / "lumina_probiotic.json"
    code = cli.main(["fit", str(problem), "--backend", "maxent", "--quiet", "--checkpoint", str(tmp_path)])
    assert code == 2
    assert "checkpoint_dir" in capsys.readouterr().err


def test_fit_writes_json_and_plot(fake_fit, tmp_path, capsys):
    json_path, png_path = tmp_path / "out.json", tmp_path / "out.png"
    code = cli.main(["fit", "p.json", "--quiet", "--json", str(json_path), "--plot", str(png_path)])
    assert code == 0
    document = json.loads(json_path.read_text())
    assert document["target_variable"] == "rain"
    assert set(document["marginals"]) == {"rain", "temp"}
    assert document["info"]["backend"] == "fake"
    assert png_path.read_bytes()[:8] == PNG_SIGNATURE
    out, _ = capsys.readouterr()
    assert f"wrote {json_path}" in out and f"wrote {png_path}" in out


def test_fit_plot_without_matplotlib_fails_before_fitting(fake_fit, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    code = cli.main(["fit", "p.json", "--plot", str(tmp_path / "x.png")])
    _, err = capsys.readouterr()
    assert code == 2
    assert err == 'error: plotting needs matplotlib: pip install "calibrated-response-plugins[plot]"\n'
    assert FakeBuilder.calls == []


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (ValueError("unknown target_variable 'x'"), "error: unknown target_variable 'x'\n"),
        (UnknownBackendError("unknown backend 'nope'; installed backends: maxent"), "error: unknown backend 'nope'; installed backends: maxent\n"),
    ],
)
def test_fit_builder_errors_are_one_line(fake_fit, monkeypatch, capsys, error, message):
    def failing_builder(*args, **kwargs):
        raise error

    monkeypatch.setattr(cli, "DistributionBuilder", failing_builder)
    code = cli.main(["fit", "p.json"])
    out, err = capsys.readouterr()
    assert code == 2
    assert err == message
    assert "Traceback" not in out + err


def test_fit_bad_config_is_an_error(fake_fit, capsys):
    assert cli.main(["fit", "p.json", "--config", "oops"]) == 2
    assert capsys.readouterr().err.startswith("error: --config expects KEY=VALUE")


def test_backends_command(monkeypatch, capsys):
    monkeypatch.setattr(cli, "installed_backends", lambda: {"smm": "calibrated-response-smm 0.1.0"})
    assert cli.main(["backends"]) == 0
    assert capsys.readouterr().out == "smm  calibrated-response-smm 0.1.0\n"


def test_usage_errors_return_exit_code(capsys):
    assert cli.main([]) == 2
    assert cli.main(["fit"]) == 2
    assert cli.main(["--help"]) == 0
    capsys.readouterr()


# ------------------------------------------- real files and a registered backend


PROBLEM = {
    "question": "Will it rain?",
    "target_variable": "rain",
    "variables": [
        {"name": "rain", "description": "rain tomorrow", "type": "binary"},
        {"name": "temp", "description": "high temperature", "type": "continuous", "lower_bound": 0.0, "upper_bound": 40.0},
    ],
    "estimates": [
        {
            "id": "P_rain",
            "estimate_type": "probability",
            "proposition": {"proposition_type": "equality", "variable": "rain", "variable_type": "binary", "value": True},
            "probability": 0.3,
        },
        {"id": "E_temp", "estimate_type": "expectation", "variable": "temp", "expected_value": 15.0},
    ],
}


@pytest.fixture
def uniform_backend():
    register_backend("cli-test-uniform", UniformBackend())
    try:
        yield "cli-test-uniform"
    finally:
        unregister_backend("cli-test-uniform")


def test_fit_end_to_end_with_registered_backend(uniform_backend, tmp_path, capsys):
    problem_path = tmp_path / "problem.json"
    problem_path.write_text(json.dumps(PROBLEM))
    json_path = tmp_path / "result.json"
    code = cli.main(["fit", str(problem_path), "--backend", uniform_backend, "--quiet", "--json", str(json_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "question: Will it rain?" in out
    # The uniform fit puts half the mass on rain = true.
    assert "P(true) = 0.5000" in out
    assert "P_rain" in out and "E_temp" in out
    document = json.loads(json_path.read_text())
    assert document["info"]["backend"] == uniform_backend
    assert document["marginals"]["rain"]["bin_probabilities"] == [0.5, 0.5]
    # 21 equal bins on [0, 40] by default.
    assert len(document["marginals"]["temp"]["bin_edges"]) == 22

    assert cli.main(["backends"]) == 0
    assert uniform_backend in capsys.readouterr().out


def test_fit_missing_file(uniform_backend, tmp_path, capsys):
    missing = tmp_path / "missing.json"
    assert cli.main(["fit", str(missing), "--backend", uniform_backend]) == 2
    assert capsys.readouterr().err == f"error: {missing}: No such file or directory\n"


def test_fit_bad_json(uniform_backend, tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    assert cli.main(["fit", str(path), "--backend", uniform_backend]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not valid JSON" in err
    assert err.count("\n") == 1


def test_fit_unknown_backend(tmp_path, capsys):
    path = tmp_path / "problem.json"
    path.write_text(json.dumps(PROBLEM))
    assert cli.main(["fit", str(path), "--backend", "no-such-backend"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown backend 'no-such-backend'")
    assert err.count("\n") == 1


def test_fit_unknown_target(uniform_backend, tmp_path, capsys):
    path = tmp_path / "problem.json"
    path.write_text(json.dumps(PROBLEM))
    assert cli.main(["fit", str(path), "--backend", uniform_backend, "--target", "nope"]) == 2
    assert "unknown target_variable 'nope'" in capsys.readouterr().err

