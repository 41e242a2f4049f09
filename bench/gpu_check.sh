#!/usr/bin/env bash
# One GPU check, under 10 minutes on a lent H100/H200: build with CUDA, run the GPU tests (every
# CUDA kernel and the zoo against the CPU path), then time GEMM and the zoo against PyTorch eager.
# Prints one table. Run from the repository root:   bash bench/gpu_check.sh
# On the device tool:  run(command="bash bench/gpu_check.sh", timeout_s=600)
# Files land in $OUT when set (the device tool brings them back): build.log, tests.log, table.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/runnx_gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
ARCH=${RUNNX_GPU_ARCH:-90}   # the lent machines are Hopper; set 80/86/89 elsewhere
BUILD=build/gpu
export PYTHONUNBUFFERED=1
start=$(date +%s)
stamp() { echo "[gpu_check +$(( $(date +%s) - start ))s] $*"; }

stamp "device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
stamp "build (sm_$ARCH only)"
if ! timeout 220 bash -c "cmake -S . -B $BUILD -G Ninja -DCMAKE_BUILD_TYPE=Release -DRUNNX_CUDA=ON \
         -DCMAKE_CUDA_ARCHITECTURES=$ARCH -DPython_EXECUTABLE=$(command -v "$PY") &&
       ninja -C $BUILD -j $(nproc)" >"$OUT/build.log" 2>&1; then
  tail -40 "$OUT/build.log"
  stamp "BUILD FAILED (see build.log)"
  exit 1
fi
stamp "built"
export RUNNX_DEV_BUILD=$BUILD
export PYTHONPATH="$PWD/python:$PWD/$BUILD/py${PYTHONPATH:+:$PYTHONPATH}"
$PY -c "import runnx._C as C; print('cuda built', C.cuda.built, 'devices', C.cuda.device_count(), C.cuda.describe_device(0) or C.cuda.unavailable_reason()); C.cuda.self_test(0); print('self-test ok')"

stamp "GPU tests"
# tests/cuda holds every CUDA kernel and provider test; the CPU-side CUDA tests ride along.
# pytest-xdist spreads the CPU-side references over the machine's cores (one CUDA context each).
per_test=""
$PY -c "import pytest_timeout" 2>/dev/null && per_test="--timeout=60"
$PY -c "import xdist" 2>/dev/null && per_test="$per_test -n 8"
timeout 200 $PY -m pytest tests/cuda tests/runtime/test_to_fp16.py \
  $(ls tests/runtime/test_cuda_*.py 2>/dev/null) -q -p no:cacheprovider -rfE $per_test \
  >"$OUT/tests.log" 2>&1
test_rc=$?
grep -E "passed|failed|error" "$OUT/tests.log" | tail -1
grep -E "^(FAILED|ERROR)" "$OUT/tests.log" | head -40
stamp "GPU tests rc=$test_rc"

stamp "bench"
timeout 170 $PY bench/gpu_bench.py --out "$OUT/table.txt" 2>&1 | tail -60
stamp "done"
exit $test_rc
