"""Time to solution of every installed backend at 1,000 variables (pytest-benchmark group ``scale``).

    pytest benchmarks/test_bench_scale.py --benchmark-enable --benchmark-only -s

One fit of the synthetic problem of ``$SCALE_BENCH_VARIABLES`` variables (default
1,000) on a tree and on a loopy graph per backend in ``$SCALE_BENCH_BACKENDS``
(default ``pgmax,smm``; ``conftest.py`` parametrises ``backend`` over the installed
backends and the others skip), each through ``DistributionBuilder(...).build()``
with default settings in a fresh process (``scale.run_fit``: compilation included,
peak RSS its own). The reference of ``scale.py`` is fitted once per graph (untimed) and
the marginal errors against it go to ``extra_info`` with the iterations, sweeps,
chains and peak RSS. These fits take minutes, so the tests skip unless benchmarks
are enabled (the root configuration disables them).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

import scale

N_VARIABLES = int(os.environ.get("SCALE_BENCH_VARIABLES", "1000"))
BACKENDS = [b for b in os.environ.get("SCALE_BENCH_BACKENDS", "pgmax,smm").split(",") if b]
TIMEOUT_S = float(os.environ.get("SCALE_BENCH_TIMEOUT", scale.DEFAULT_TIMEOUT_S))


@pytest.fixture(scope="module")
def cache_dir():
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as directory:
        yield Path(directory)


@pytest.fixture(scope="module")
def references(cache_dir):
    """``{graph: reference record}``, fitted at most once per graph."""
    fitted = {}

    def get(graph: str) -> dict:
        if graph not in fitted:
            fitted[graph] = scale.run_fit(scale.reference_spec(graph, N_VARIABLES), cache_dir, TIMEOUT_S)
        return fitted[graph]

    return get


@pytest.mark.benchmark(group="scale")
@pytest.mark.parametrize("graph", list(scale.GRAPHS))
def test_time_to_solution(benchmark, backend, graph, cache_dir, references):
    if benchmark.disabled:
        pytest.skip("fits to convergence take minutes: run with --benchmark-enable")
    if backend not in BACKENDS:
        pytest.skip(f"{backend} is not in $SCALE_BENCH_BACKENDS ({','.join(BACKENDS)})")
    spec = scale.FitSpec(graph, N_VARIABLES, backend, backend)
    record = benchmark.pedantic(lambda: scale.run_fit(spec, cache_dir, TIMEOUT_S), rounds=1, iterations=1)
    assert record["status"] == "ok", record.get("message")
    reference = references(graph)
    record = scale.with_accuracy(record, reference if reference["status"] == "ok" else None, cache_dir)
    benchmark.extra_info.update({key: value for key, value in record.items() if key != "diagnostics"})
    print("\n" + scale.summary_line(record) + f"  max marginal error {record.get('max_marginal_error', '-')} "
          f"against {record.get('reference', 'no reference')}")
