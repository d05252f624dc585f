"""The README's front page stays true: its example runs and CI uses its test command."""

import re
import subprocess

import pytest

from calibrated_response_plugins.cli import main
from calibrated_response_plugins.registry import installed_backends
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

README = (REPO / "README.md").read_text(encoding="utf-8")


def code_block_after(heading: str, language: str) -> str:
    section = README.split(heading, 1)[1]
    return re.search(rf"```{language}\n(.*?)```", section, re.S).group(1)


def require_default_backend() -> None:
    if "smm" not in installed_backends():
        pytest.skip("the default backend smm is not installed")


def test_ci_runs_the_readme_test_command():
    command = code_block_after("<!-- test-command -->", "bash").strip()
    assert command.endswith("python3 -m pytest")
    extracted = subprocess.run(
        ["bash", "-c", "sed -n '/<!-- test-command -->/,/^```$/p' README.md | grep -m1 'pytest'"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert extracted == command
    assert "README.md" in (REPO / ".ci" / "run").read_text()


def test_quickstart_example_fits_and_plots(tmp_path, capsys):
    require_default_backend()
    command = code_block_after("## Quickstart", "bash").strip()
    install, run = command.split(" && ")
    # The plot needs matplotlib, which only the core's plot extra installs.
    assert '".[plot]"' in install and "./calibrated_response_smm" in install
    fit_args = run.split("calibrated-response ", 1)[1].split()
    assert fit_args[:2] == ["fit", "examples/problems/lumina_probiotic.json"]
    plot = tmp_path / "lumina.png"
    fit_args[fit_args.index("--plot") + 1] = str(plot)
    assert main([*fit_args[:1], str(REPO / fit_args[1]), *fit_args[2:], "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "P(true) =" in out and "constraints (10 fitted)" in out  # 9 linear estimates and a correlation
    assert plot.stat().st_size > 10_000


def test_api_example_runs(monkeypatch, capsys):
    require_default_backend()
    monkeypatch.chdir(REPO)
    exec(compile(code_block_after("## The API", "python"), "README.md", "exec"), {})
    assert "C_lumina_cavit_long_term_co" in capsys.readouterr().out


def test_the_contract_is_cited_where_a_clone_has_it():
    """Code and docs point at docs/semantics.md, which ships with the repository."""
    assert (REPO / "docs" / "semantics.md").is_file()
    tracked = subprocess.run(["git", "ls-files", "*.py", "*.md"], cwd=REPO, capture_output=True, text=True,
                             check=False).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    stale = "DESIGN" + ".md"  # split so this file does not match itself
    citing = [name for name in tracked if stale in (REPO / name).read_text(encoding="utf-8", errors="replace")]
    assert not citing, f"files citing {stale}, which a clone does not have: {citing}"
