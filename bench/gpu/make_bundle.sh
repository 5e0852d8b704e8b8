#!/usr/bin/env bash
# Builds HERE (nvcc and the project's dependencies; no GPU needed) everything bench/gpu/run_all.sh
# runs on the GPU machine, whose image has CUDA, PyTorch and transformers but no MPI, HDF5,
# OpenBLAS, toml++ or GTest, and packs it:
#
#   bash bench/gpu/make_bundle.sh [BUILD_DIR] [BUNDLE_DIR]     (defaults build-gpu, build-gpu-bundle;
#                                                              both ignored by git: /build*/; an
#                                                              existing build folder of build.sh's
#                                                              configuration is reused as it is)
#   result: BUNDLE_DIR/bundle.tar.xz; then run(command="bash bench/gpu/run_all.sh",
#           carry=["build-gpu-bundle"], timeout_s=540)
#
# Inside: bin/ the stage programs, saepipe, saepipe_gpu_tests, saepipe_bench_gpu,
# saepipe_gpt2_cuda, and Open MPI's mpirun/orted; lib/ every shared library they need except
# the C runtime (libc, libm, libstdc++, libgcc_s: the GPU machine's are newer) and CUDA's own
# (cuBLAS, cuBLASLt, NCCL: the GPU machine has 13.x, or PyTorch's wheels); ompi/ Open MPI's
# components (lib/x86_64-linux-gnu/openmpi, pmix2) and help files, laid out under one prefix so
# that OPAL_PREFIX relocates them. BUILD_INFO says what was built from and whether the device
# code was checked to be sm_90 here: with cuobjdump where this machine has it, else by the
# compile flags CMake generated; run_all.sh checks the binaries with cuobjdump there (and fails
# when that machine lacks it).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$SRC/build-gpu}
OUTDIR=${2:-$SRC/build-gpu-bundle}
cd "$SRC"
launchers=()
if command -v ccache >/dev/null; then  # only where it is installed: else every compile would fail
  launchers=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
  export CCACHE_BASEDIR=$SRC
fi
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSAEPIPE_CUDA=ON -DSAEPIPE_CUDA_ARCH=90 "${launchers[@]}" >/dev/null
grep -q '^SAEPIPE_CUDA_ARCH:STRING=90$' "$BUILD/CMakeCache.txt" || { echo "$BUILD: SAEPIPE_CUDA_ARCH must be 90" >&2; exit 1; }
BINS=(saepipe saepipe-harvest saepipe-train saepipe-stats saepipe-interpret saepipe_gpu_tests saepipe_bench_gpu
      saepipe_gpt2_cuda)
cmake --build "$BUILD" -j"${JOBS:-$(nproc)}" --target "${BINS[@]}"
[ -x "$BUILD/tests/saepipe_gpu_tests" ] || { echo "no saepipe_gpu_tests: was nvcc found?" >&2; exit 1; }

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bin" "$STAGE/lib" "$STAGE/ompi"
for b in "${BINS[@]}"; do
  f=$BUILD/$b
  [ -x "$f" ] || f=$BUILD/tests/$b
  cp "$f" "$STAGE/bin/"
done
# Open MPI under one prefix (Debian's multiarch layout), for OPAL_PREFIX / PMIX_INSTALL_PREFIX.
MA=lib/x86_64-linux-gnu
mkdir -p "$STAGE/ompi/$MA" "$STAGE/ompi/share" "$STAGE/ompi/bin"
cp -a "/usr/$MA/openmpi" "$STAGE/ompi/$MA/"
[ -d "/usr/$MA/pmix2" ] && cp -a "/usr/$MA/pmix2" "$STAGE/ompi/$MA/"
cp -a /usr/share/openmpi "$STAGE/ompi/share/"
[ -d /usr/share/pmix ] && cp -a /usr/share/pmix "$STAGE/ompi/share/"
rm -rf "$STAGE/ompi/$MA/openmpi/include"
for t in orterun orted; do cp -L "$(command -v $t)" "$STAGE/ompi/bin/"; done
ln -s orterun "$STAGE/ompi/bin/mpirun"

# The shared libraries of the programs and of Open MPI's components (OpenBLAS included: the
# CPU references run there too), less the C runtime and CUDA's own.
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libresolv\.so|libstdc\+\+|libgcc_s|libcuda\.so|libcudart|libcublas|libcublasLt|libnccl)'
objects=("$STAGE"/bin/* "$STAGE"/ompi/bin/orterun "$STAGE"/ompi/bin/orted)
while IFS= read -r so; do objects+=("$so"); done < <(find "$STAGE/ompi/$MA" -name '*.so*' -type f)
for o in "${objects[@]}"; do
  ldd "$o" 2>/dev/null | awk '/=>/ && $3 ~ /^\// {print $1, $3}' | while read -r name path; do
    if [[ "$name" =~ $skip ]] || [ -e "$STAGE/lib/$name" ] || [[ "$path" == /usr/$MA/openmpi/* ]]; then continue; fi
    cp -L "$path" "$STAGE/lib/$name"
  done
done
# Everything but CUDA's own libraries must resolve from the bundle.
missing=$(for b in "$STAGE"/bin/* "$STAGE"/ompi/bin/orterun; do
  LD_LIBRARY_PATH="$STAGE/lib:$STAGE/ompi/$MA/openmpi/lib" ldd "$b"; done | grep "not found" | grep -vE 'libcu|libnccl' || true)
[ -z "$missing" ] || { echo "unresolved: $missing" >&2; exit 1; }

{
  echo "built $(date -u +%FT%TZ) on $(hostname) from $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+changes')"
  /usr/local/cuda/bin/nvcc --version 2>/dev/null | tail -2 || true
  # The device code must be sm_90 (and nothing else).
  CUOBJDUMP=$(command -v cuobjdump || echo /usr/local/cuda/bin/cuobjdump)
  if [ -x "$CUOBJDUMP" ]; then
    for b in saepipe-train saepipe_gpu_tests saepipe_bench_gpu; do
      if "$CUOBJDUMP" --list-elf "$STAGE/bin/$b" | grep -q sm_90; then echo "sm_90 code: $b yes"; else echo "sm_90 code: $b NO"; fi
    done
  else
    gen=$(grep -rhoE -- "--generate-code=[^ ]+" "$BUILD/CMakeFiles/saepipe_cuda.dir/flags.make" | sort -u)
    if [ "$gen" = "--generate-code=arch=compute_90,code=[compute_90,sm_90]" ]; then
      echo "sm_90 code: by the compile flags ($gen; no cuobjdump here: run_all.sh checks the binaries)"
    else
      echo "sm_90 code: NO (flags: ${gen:-none found})"
    fi
  fi
  du -sh "$STAGE"/bin "$STAGE"/lib "$STAGE"/ompi
} >"$STAGE/BUILD_INFO"
if grep -q "sm_90 code: .*NO" "$STAGE/BUILD_INFO"; then
  cat "$STAGE/BUILD_INFO" >&2
  echo "device code other than sm_90: not bundled" >&2
  exit 1
fi
rm -rf "$OUTDIR" && mkdir -p "$OUTDIR"
tar -C "$STAGE" -cJf "$OUTDIR/bundle.tar.xz" .
cat "$STAGE/BUILD_INFO"
size=$(stat -c %s "$OUTDIR/bundle.tar.xz")
ls -l "$OUTDIR/bundle.tar.xz"
# The working tree that travels to the GPU machine is limited to 64 MiB in all.
[ "$size" -lt $((56 << 20)) ] || { echo "bundle of $size bytes leaves too little of the 64 MiB a run may carry" >&2; exit 1; }
echo "carry [\"$(basename "$OUTDIR")\"] and run: bash bench/gpu/run_all.sh"
