#!/usr/bin/env bash
# smm on an accelerator, in one command of at most ten minutes (every step has its own timeout).
#
#   bash benchmarks/gpu.sh                     # from the repository root, on the lent machine
#   GPU_BENCH_SMALL=1 bash benchmarks/gpu.sh   # the same steps at small sizes (a check on a CPU)
#
# Steps: install the core and the smm backend without dependencies or network
# (pip install --no-deps --no-build-isolation -e; PYTHONPATH when pip cannot); Gibbs site
# updates per second of smm on random sparse graphs (K = 2 and 10, 2.5 pairs per variable, 256
# chains); one training iteration of the 100,000-variable benchmark (bench_smm.py); a
# converged smm fit of the 10,000-variable synthetic tree through the public builder (scale.py).
# Each step writes JSON under $OUT (default benchmarks/results/gpu) and prints its rates;
# `python benchmarks/gpu_report.py DIR` turns that folder into the REPORT.md section.
#
# Sizes and limits (seconds) come from the environment:
#   GPU_BENCH_VARS (1000000)  GPU_BENCH_STATES (2,10)  GPU_BENCH_CHAINS (256)  GPU_BENCH_SWEEPS (20)
#   GPU_BENCH_LARGE_VARS (100000)  GPU_BENCH_SCALE_SIZES (10000)
#   GPU_BENCH_T_INSTALL (60)  GPU_BENCH_T_THROUGHPUT (170 per K)  GPU_BENCH_T_LARGE (100)  GPU_BENCH_T_SCALE (120)
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
OUT=${OUT:-$ROOT/benchmarks/results/gpu}
mkdir -p "$OUT"

if [ "${GPU_BENCH_SMALL:-0}" = 1 ]; then
  : "${GPU_BENCH_VARS:=2000}" "${GPU_BENCH_LARGE_VARS:=2000}" "${GPU_BENCH_SCALE_SIZES:=30}" "${GPU_BENCH_SWEEPS:=4}"
fi
VARS=${GPU_BENCH_VARS:-1000000}
STATES=${GPU_BENCH_STATES:-2,10}
CHAINS=${GPU_BENCH_CHAINS:-256}
SWEEPS=${GPU_BENCH_SWEEPS:-20}
LARGE_VARS=${GPU_BENCH_LARGE_VARS:-100000}
SCALE_SIZES=${GPU_BENCH_SCALE_SIZES:-10000}
T_INSTALL=${GPU_BENCH_T_INSTALL:-60}
T_THROUGHPUT=${GPU_BENCH_T_THROUGHPUT:-170}
T_LARGE=${GPU_BENCH_T_LARGE:-100}
T_SCALE=${GPU_BENCH_T_SCALE:-120}
START=$(date +%s)

step() {  # step NAME SECONDS COMMAND...: run with a timeout, log its status and time
  local name=$1 limit=$2 began status
  shift 2
  began=$(date +%s)
  echo "== $name (limit ${limit} s, $(( began - START )) s into the run)"
  timeout --kill-after=10 "$limit" "$@"
  status=$?
  echo "== $name: exit $status after $(( $(date +%s) - began )) s"
  echo "{\"step\": \"$name\", \"exit\": $status, \"seconds\": $(( $(date +%s) - began )), \"limit\": $limit}" >> "$OUT/steps.jsonl"
  return 0
}

: > "$OUT/steps.jsonl"
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "gpu: none (nvidia-smi absent)"
  echo "cpus: $(nproc)"
  "$PY" -c 'import sys, jax; print("python", sys.version.split()[0], "jax", jax.__version__, "devices", jax.devices())'
} 2>&1 | tee "$OUT/machine.txt"

# The core and smm only (pgmax and maxent are not needed here); their entry points make `smm` a backend.
step install "$T_INSTALL" "$PY" -m pip install -q --no-deps --no-build-isolation -e . -e ./calibrated_response_smm
if ! "$PY" -c 'from calibrated_response_plugins.registry import installed_backends as b; assert "smm" in b()' 2>/dev/null; then
  echo "pip install failed: running from the source tree (the benchmarks that need the smm entry point will fail)"
  export PYTHONPATH="$ROOT:$ROOT/calibrated_response_smm/src${PYTHONPATH:+:$PYTHONPATH}"
fi

for K in ${STATES//,/ }; do
  step "throughput K=$K" "$T_THROUGHPUT" "$PY" benchmarks/bench_thrml.py --peers smm --vars "$VARS" \
    --pairs $(( VARS * 5 / 2 )) --states "$K" --chains "$CHAINS" --sweeps "$SWEEPS" --rounds 3 \
    --out "$OUT/throughput_k$K.json" --no-report
done

step "large training iteration" "$T_LARGE" bash -c \
  "'$PY' benchmarks/bench_smm.py $LARGE_VARS $(( LARGE_VARS * 3 )) | tail -n 1 | tee '$OUT/large_iteration.json'"

step "scale ${SCALE_SIZES}" "$T_SCALE" "$PY" benchmarks/scale.py --sizes "$SCALE_SIZES" --graphs tree \
  --backends smm --no-reference --timeout $(( T_SCALE - 15 )) --out "$OUT/scale.json" \
  --cache "$OUT/scale_cache" --no-report

echo "== rates"
"$PY" benchmarks/gpu_report.py "$OUT" --print-only
echo "== done in $(( $(date +%s) - START )) s"
