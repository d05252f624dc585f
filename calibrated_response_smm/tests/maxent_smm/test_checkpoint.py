"""A fit interrupted between chunks resumes from its checkpoint to the uninterrupted answer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from calibrated_response_smm.adapters import graph_from_constraints
from calibrated_response_smm.config import SMMConfig
from calibrated_response_smm.training import SMMModel, fit_model
from calibrated_response_plugins.testing import small_binary_problem as make_small_binary_problem

# A short schedule (chunks of 2 iterations) that converges in its first search chunk, then
# averages over four: five chunks in all.
SCHEDULE = dict(num_chains=256, chunk_size=2, num_iterations=12, averaging_iterations=8, final_sweeps=20,
                burn_in_sweeps=10, seed=4)


class Interrupted(Exception):
    """Stands for a kill at a chunk boundary."""


def _fit(progress=None, **options):
    adapted = graph_from_constraints(make_small_binary_problem())
    config = SMMConfig(**SCHEDULE, **options)
    model = SMMModel.build(adapted.graph, adapted.targets, config.num_chains, config.l2_regularization)
    return fit_model(model, config, progress=progress)


def _stop_after(chunks: int):
    calls = []

    def progress(done, total, metrics):
        calls.append(done)
        if len(calls) == chunks:
            raise Interrupted

    return progress


def _assert_same_fit(fit, reference):
    # one process, the same compiled chunks from the same state: bit for bit
    assert np.array_equal(fit.params, reference.params)
    for a, b in zip(fit.marginals, reference.marginals):
        assert np.array_equal(a, b)
    for a, b in zip(fit.table_moments, reference.table_moments):
        assert np.array_equal(a, b)
    assert fit.history["max_error"] == reference.history["max_error"]
    assert fit.history["iteration"] == reference.history["iteration"]
    assert fit.n_iterations == reference.n_iterations and fit.converged == reference.converged


@pytest.fixture(scope="module")
def reference():
    return _fit()


@pytest.mark.parametrize("stop, every, latest", [(4, 1, 3), (5, 3, 3)])
def test_resumed_fit_equals_uninterrupted(reference, tmp_path, stop, every, latest):
    """Interrupted in the averaging phase at chunk ``stop`` of 5, resumed from checkpoint ``latest``.

    The interrupted chunk's progress report comes before its checkpoint; with
    ``every=3`` the checkpoints are the end of the search (1) and chunk 3, so the
    resumed fit runs chunks 4 and 5 again.
    """
    assert reference.diagnostics["search_iterations"] == 2  # 1 search chunk, then 4 averaging ones
    with pytest.raises(Interrupted):
        _fit(progress=_stop_after(stop), checkpoint_dir=str(tmp_path), checkpoint_every=every)
    assert max(int(p.name) for p in tmp_path.iterdir() if p.name.isdigit()) == latest
    _assert_same_fit(_fit(checkpoint_dir=str(tmp_path), checkpoint_every=every), reference)


def test_finished_fit_resumes_at_its_final_estimate(reference, tmp_path):
    _fit(checkpoint_dir=str(tmp_path), checkpoint_keep=1)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.isdigit()) == ["5"]  # the last chunk, kept alone
    calls = []
    again = _fit(progress=lambda *a: calls.append(a), checkpoint_dir=str(tmp_path))
    assert calls == []  # no chunk ran again
    _assert_same_fit(again, reference)


def test_checkpoint_of_another_fit_is_refused(tmp_path):
    with pytest.raises(Interrupted):
        _fit(progress=_stop_after(3), checkpoint_dir=str(tmp_path))  # saved: the end of the search (1) and chunk 2
    with pytest.raises(ValueError, match="checkpoint of another fit"):
        _fit(checkpoint_dir=str(tmp_path), tolerance=1e-2)


@pytest.mark.parametrize("value", [5, "", ["a"]])
def test_bad_checkpoint_dir_is_named(value):
    with pytest.raises(ValueError, match="checkpoint_dir"):
        SMMConfig(checkpoint_dir=value)


def test_path_object_is_kept_as_text(tmp_path):
    assert SMMConfig(checkpoint_dir=tmp_path).checkpoint_dir == str(tmp_path)


EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "problems" / "lumina_probiotic.json"
# A tolerance it cannot reach: every one of the 40 single-iteration chunks runs, so a kill
# lands inside the schedule, not after it.
CLI_OPTIONS = ["num_chains=256", "chunk_size=1", "num_iterations=40", "averaging_iterations=4", "tolerance=1e-9",
               "final_sweeps=20", "burn_in_sweeps=10", "checkpoint_every=1"]


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "calibrated_response_plugins.cli", "fit", str(EXAMPLE), "--backend", "smm",
            "--quiet", "--config", *CLI_OPTIONS, *args]


def _checkpoints(directory: Path) -> list[int]:
    return sorted(int(p.name) for p in directory.glob("*") if p.name.isdigit() and (p / "commit_success.txt").exists())


def test_cli_fit_killed_and_resumed_equals_uninterrupted(tmp_path):
    """``--checkpoint DIR``: SIGKILL mid-fit, the same command again, the answer of an uninterrupted run."""
    reference = tmp_path / "reference.json"
    done = subprocess.run(_cli("--json", str(reference)), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    directory = tmp_path / "checkpoints"
    killed = subprocess.Popen(_cli("--checkpoint", str(directory)), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not (_checkpoints(directory) and _checkpoints(directory)[-1] >= 3) and time.monotonic() < deadline:
            assert killed.poll() is None, "the fit ended before it could be killed"
            time.sleep(0.02)
        os.kill(killed.pid, signal.SIGKILL)
    finally:
        killed.kill()
        killed.wait(timeout=60)
    assert 3 <= _checkpoints(directory)[-1] < 44  # killed inside the schedule

    resumed = tmp_path / "resumed.json"
    done = subprocess.run(_cli("--checkpoint", str(directory), "--json", str(resumed)), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = json.loads(reference.read_text()), json.loads(resumed.read_text())
    # fresh processes, same machine and compiled code: equal to the last digit
    assert a["marginals"] == b["marginals"]
    assert [r["fitted"] for r in a["info"]["constraint_report"]] == [r["fitted"] for r in b["info"]["constraint_report"]]
