#!/usr/bin/env bash
# Builds the GPU parity tests and the GPU microbenchmark HERE (a machine with nvcc and the
# project's dependencies; no GPU needed) for sm_90, and packs them with the shared libraries
# a bare GPU machine may lack (Open MPI's, OpenBLAS, libgomp) into
#   build-gpu-bundle/bundle.tar.xz      (ignored by git: /build*/)
# for bench/gpu/run_device_checks.sh to use on the GPU machine, where it is carried:
#   device run: command "bash bench/gpu/run_device_checks.sh", carry ["build-gpu-bundle"].
# Not packed: glibc, libstdc++/libgcc_s, and the CUDA libraries (cuBLAS, cuBLASLt, NCCL: too
# large; the GPU machine's CUDA toolkit or PyTorch's wheels provide them). The CUDA runtime is
# linked statically.
#
#   bash bench/gpu/make_device_bundle.sh [BUILD_DIR]     (default build-cuda)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build-cuda}
OUTDIR=build-gpu-bundle
launchers=()
if command -v ccache >/dev/null; then
  launchers=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSAEPIPE_BENCH=OFF -DSAEPIPE_CUDA=ON -DSAEPIPE_CUDA_ARCH=90 \
  "${launchers[@]}" >/dev/null
cmake --build "$BUILD" -j"${JOBS:-$(nproc)}" --target saepipe_gpu_tests saepipe_bench_gpu
[ -x "$BUILD/tests/saepipe_gpu_tests" ] || { echo "no saepipe_gpu_tests: was nvcc found?" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib"
cp "$BUILD/tests/saepipe_gpu_tests" "$BUILD/saepipe_bench_gpu" "$stage/bin/"
ldd "$stage"/bin/* | awk '/=>/ && $3 ~ /^\// {print $3}' | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so* | libm.so* | libdl.so* | librt.so* | libpthread.so* | ld-linux* | libstdc++.so* | libgcc_s.so* | \
      libcublas* | libcudart* | libnccl*) ;;
    *) cp -L "$lib" "$stage/lib/" ;;
  esac
done
{
  echo "built $(date -u +%FT%TZ) on $(hostname) from $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+changes')"
  /usr/local/cuda/bin/nvcc --version 2>/dev/null | tail -2 || true
  ls -l "$stage/bin" "$stage/lib"
} >"$stage/BUILD_INFO"
mkdir -p "$OUTDIR"
tar -C "$stage" -cJf "$OUTDIR/bundle.tar.xz" .
ls -l "$OUTDIR/bundle.tar.xz"
