#!/usr/bin/env bash
# The GPU checks of issue 6 in one run on a machine with an NVIDIA Hopper GPU (sm_90). Time
# limits per step (parity 150 s, memcheck 180 s, benchmark 120 s; a build here 420 s more)
# keep a run with the prebuilt bundle inside 8 minutes whatever happens; not yet timed on a GPU:
#   1. the parity tests (tests/gpu/test_cuda_kernels.cpp: every CUDA kernel against the CPU
#      reference, the TopK step against sae_forward_backward, the device communicators),
#   2. the same under compute-sanitizer memcheck,
#   3. the TopK training-step microbenchmark (bench/gpu/bench_topk_step.cpp: d=768,
#      d_sae=32768, k=32, batches 4096 and 16384, bf16 and fp32) next to a measured cuBLAS
#      GEMM peak.
# Results go to $OUT (default ./gpu-results), at most 8 files:
#   summary.txt env.txt parity.log parity.xml memcheck.log bench.txt bench_topk_step.json
#   (build.log when it builds)
#
# Binaries: build-gpu-bundle/bundle.tar.xz when present (made on a CPU machine with nvcc by
# bench/gpu/make_device_bundle.sh and carried along), else built here with cmake
# (-DSAEPIPE_CUDA_ARCH=90), which needs the project's dependencies (MPI, HDF5, OpenBLAS, ...).
# A GPU session (device tool):
#   here:   bash bench/gpu/make_device_bundle.sh
#   device: run command "bash bench/gpu/run_device_checks.sh", carry ["build-gpu-bundle"], timeout_s 540
# Each step has its own time limit; a failing step does not stop the others; the exit status
# is the number of failed steps.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
OUT=${OUT:-$PWD/gpu-results}
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
failed=0
note() { echo "$*" | tee -a "$SUMMARY"; }
step() {  # step NAME LIMIT_S LOG COMMAND...: runs it with a time limit, logs, records the status
  local name=$1 limit=$2 log=$3
  shift 3
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1
  local rc=$?
  note "$(printf '%-10s rc=%-3s %4ss  %s' "$name" "$rc" "$((SECONDS - t0))" "$*")"
  ((rc == 0)) || failed=$((failed + 1))
  return $rc
}
# ran_on_device NAME LOG: a gtest run counts only if tests passed and none skipped for want of a
# device (every test skips without one and gtest then exits 0).
ran_on_device() {
  local passed
  passed=$(grep -oE "^\[  PASSED  \] [0-9]+ test" "$2" | grep -oE "[0-9]+" | tail -1)
  if [ "${passed:-0}" -eq 0 ] || grep -q "no CUDA device" "$2"; then
    note "$1: no test ran on a device (${passed:-0} passed; $(grep -c "no CUDA device" "$2") skipped for want of one)"
    failed=$((failed + 1))
  fi
}

{
  echo "## date"; date -u +%FT%TZ
  echo "## nvidia-smi"; nvidia-smi 2>&1 || true
  echo "## nvcc"; (nvcc --version || /usr/local/cuda/bin/nvcc --version) 2>&1 | tail -2
  echo "## compute-sanitizer"; command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>&1
  echo "## cpu"; nproc; uname -a
} >"$OUT/env.txt" 2>&1

# ---- binaries
if [ -f build-gpu-bundle/bundle.tar.xz ]; then
  DIR=$(mktemp -d)
  tar -C "$DIR" -xJf build-gpu-bundle/bundle.tar.xz
  BIN=$DIR/bin
  LIBS=$DIR/lib
  cat "$DIR/BUILD_INFO" >>"$OUT/env.txt"
  note "binaries: prebuilt bundle ($(head -1 "$DIR/BUILD_INFO"))"
else
  LIBS=
  BUILD=build-gpu
  step build 420 "$OUT/build.log" bash -c "cmake -S . -B $BUILD -DCMAKE_BUILD_TYPE=Release -DSAEPIPE_BENCH=OFF \
    -DSAEPIPE_CUDA=ON -DSAEPIPE_CUDA_ARCH=90 && cmake --build $BUILD -j$(nproc) --target saepipe_gpu_tests saepipe_bench_gpu" ||
    { tail -40 "$OUT/build.log"; exit 1; }
  BIN=$(cd "$BUILD" && pwd)
  ln -sf "$BIN/tests/saepipe_gpu_tests" "$BIN/saepipe_gpu_tests"
fi

# ---- CUDA libraries (cuBLAS, cuBLASLt, NCCL): the toolkit's, else the wheels of PyTorch's Python.
libpath=$LIBS
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda/lib; do
  [ -d "$d" ] && libpath=$libpath:$d
done
wheels=$(python3 -c 'import glob, os, nvidia; print(":".join(sorted({os.path.dirname(p) for d in nvidia.__path__ for p in glob.glob(d + "/*/lib/lib*.so*")})))' 2>/dev/null || true)
[ -n "$wheels" ] && libpath=$libpath:$wheels
export LD_LIBRARY_PATH=${libpath#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
{
  echo "## LD_LIBRARY_PATH"; echo "$LD_LIBRARY_PATH"
  echo "## ldd saepipe_gpu_tests"; ldd "$BIN/saepipe_gpu_tests"
} >>"$OUT/env.txt" 2>&1
if ldd "$BIN/saepipe_gpu_tests" "$BIN/saepipe_bench_gpu" | grep -q "not found"; then
  note "missing shared libraries:"; ldd "$BIN/saepipe_gpu_tests" "$BIN/saepipe_bench_gpu" | grep "not found" | sort -u | tee -a "$SUMMARY"
fi

export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}
# The tests of issue 6 (suite Cuda); other suites in the binary (e.g. CudaGpt2) have their own checks.
FILTER=${GTEST_FILTER:-Cuda.*}
# ---- 1. parity
step parity 150 "$OUT/parity.log" "$BIN/saepipe_gpu_tests" --gtest_filter="$FILTER" --gtest_output=xml:"$OUT/parity.xml"
grep -E "^\[ +(PASSED|SKIPPED|FAILED) +\] [0-9]+ test|^\[  FAILED  \] [^ ]+$" "$OUT/parity.log" | tee -a "$SUMMARY"
ran_on_device parity "$OUT/parity.log"

# ---- 2. memcheck: the same tests (all small) under compute-sanitizer
SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
step memcheck 180 "$OUT/memcheck.log" "$SAN" --tool memcheck --leak-check full --error-exitcode 9 \
  "$BIN/saepipe_gpu_tests" --gtest_filter="$FILTER" --gtest_brief=1
grep -E "ERROR SUMMARY|^\[ +(PASSED|SKIPPED|FAILED) +\] [0-9]+ test|^\[  FAILED  \] [^ ]+$" "$OUT/memcheck.log" |
  tee -a "$SUMMARY"
ran_on_device memcheck "$OUT/memcheck.log"

# ---- 3. the TopK step microbenchmark
step bench 120 "$OUT/bench.txt" "$BIN/saepipe_bench_gpu" --d 768 --f 32768 --k 32 --batches 4096,16384 \
  --precisions bf16,fp32 --iters 10 --json "$OUT/bench_topk_step.json"
tee -a "$SUMMARY" <"$OUT/bench.txt"

note "failed steps: $failed"
exit "$failed"
