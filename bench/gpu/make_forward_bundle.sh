#!/usr/bin/env bash
# Packs what bench/gpu/run_forward_checks.sh runs on a GPU machine, built HERE (the GPU
# machine has nvcc and CMake but not MPI, HDF5, OpenBLAS, toml++, CLI11, GTest, ...):
#
#   bench/gpu/make_forward_bundle.sh [BUILD_DIR] [BUNDLE_DIR]
#       defaults: build-gpufwd  build-gpufwd-bundle   (both ignored by git: /build*/)
#       result: BUNDLE_DIR/bundle.tar.xz (~10 MB; bin/, lib/, SOURCE.txt inside)
#
# 1. builds saepipe_gpu_tests and saepipe_gpt2_cuda in BUILD_DIR for sm_90 (H100 / H200);
# 2. copies them to BUNDLE_DIR/bin and the shared libraries they need to BUNDLE_DIR/lib,
#    except the C runtime (libc, libm, libstdc++, ...: the GPU machine's are newer) and the
#    CUDA libraries (cuBLAS, cuBLASLt, NCCL: the GPU machine has its own 13.x);
# 3. replaces OpenBLAS (36 MB) by a small stand-in: the netlib reference BLAS (Debian's
#    libblas3, 0.5 MB) behind the name libopenblas.so.0, plus no-op openblas_*_num_threads.
#    Only the CPU reference models of the parity tests use BLAS there; slower, same results to
#    rounding.
# Then: run(command="bash bench/gpu/run_forward_checks.sh", carry=["build-gpufwd-bundle"]).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$SRC/build-gpufwd}
BUNDLE=${2:-$SRC/build-gpufwd-bundle}
cd "$SRC"
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
    -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache -DSAEPIPE_BENCH=OFF -DSAEPIPE_CUDA_ARCH=90
fi
grep -q '^SAEPIPE_CUDA_ARCH:STRING=90$' "$BUILD/CMakeCache.txt" || { echo "$BUILD: SAEPIPE_CUDA_ARCH must be 90" >&2; exit 1; }
cmake --build "$BUILD" -j"${JOBS:-2}" --target saepipe_gpu_tests saepipe_gpt2_cuda

OUTDIR=$BUNDLE
BUNDLE=$(mktemp -d)
trap 'rm -rf "$BUNDLE"' EXIT
mkdir -p "$BUNDLE/bin" "$BUNDLE/lib"
BINS=("$BUILD/tests/saepipe_gpu_tests" "$BUILD/saepipe_gpt2_cuda")
cp "${BINS[@]}" "$BUNDLE/bin/"
# (libgfortran / libquadmath: only OpenBLAS needs them.)
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libresolv\.so|libstdc\+\+|libgcc_s|libcuda\.so|libcudart|libcublas|libcublasLt|libnccl|libopenblas|libgfortran|libquadmath)'
for b in "${BINS[@]}"; do
  ldd "$b" | awk '/=>/ {print $1, $3}' | while read -r name path; do
    if [[ "$name" =~ $skip ]] || [ -e "$BUNDLE/lib/$name" ]; then continue; fi
    cp -L "$path" "$BUNDLE/lib/$name"
  done
done
# OpenBLAS stand-in.
ref=/usr/lib/x86_64-linux-gnu/blas/libblas.so.3
if [ ! -e "$ref" ]; then
  apt-get install -y -q libblas3 >/dev/null
fi
cp -L "$ref" "$BUNDLE/lib/libblas.so.3"
cat > "$BUNDLE/lib/openblas_stub.c" <<'C'
/* The OpenBLAS-only calls saepipe makes, for the netlib BLAS standing in for it. */
int openblas_get_num_threads(void) { return 1; }
void openblas_set_num_threads(int n) { (void)n; }
C
gcc -shared -fPIC -O2 -o "$BUNDLE/lib/libopenblas.so.0" -Wl,-soname,libopenblas.so.0 "$BUNDLE/lib/openblas_stub.c" \
  -Wl,--no-as-needed -L"$BUNDLE/lib" -l:libblas.so.3
rm "$BUNDLE/lib/openblas_stub.c"
# The device code must be sm_90 (cuobjdump, where this machine has it; the GPU machine lists it
# again in its env.txt).
if command -v cuobjdump >/dev/null; then
  for b in "$BUNDLE"/bin/*; do
    cuobjdump --list-elf "$b" | grep -q sm_90 || { echo "$b: no sm_90 code" >&2; exit 1; }
  done
fi
# Everything but CUDA's own libraries must resolve from the bundle.
missing=$(for b in "$BUNDLE"/bin/*; do LD_LIBRARY_PATH="$BUNDLE/lib" ldd "$b"; done | grep "not found" | grep -vE 'libcu|libnccl' || true)
[ -z "$missing" ] || { echo "unresolved: $missing" >&2; exit 1; }
(cd "$SRC" && git rev-parse HEAD 2>/dev/null; git -C "$SRC" status --short 2>/dev/null | head -50) > "$BUNDLE/SOURCE.txt"
rm -rf "$OUTDIR" && mkdir -p "$OUTDIR"
tar -C "$BUNDLE" -cJf "$OUTDIR/bundle.tar.xz" .
du -sh "$BUNDLE" | sed 's/^/unpacked: /'
ls -l "$OUTDIR/bundle.tar.xz"
echo "carry [\"$(basename "$OUTDIR")\"] and run: bash bench/gpu/run_forward_checks.sh"
