#!/usr/bin/env bash
# The GPU checks of run.device = "cuda" on an H200 (sm_90), from the repository root, in `run`
# calls of at most 540 s each (the machine's start comes on top):
#   here:        bash bench/gpu/make_bundle.sh        (builds and packs build-gpu-bundle/bundle.tar.xz)
#   GPU machine: run(command="bash bench/gpu/run_all.sh", carry=["build-gpu-bundle"], timeout_s=540)
#                the parity checks (env gtest quickstart shards harvest); then, when the device
#                time allows a second call, the same with STEPS="env sanitizer bench"
# TOTAL_S (default 500 s: 540 less the last step's 10 s kill grace and the summary) bounds the
# bundle's unpacking and the steps together. Each step runs under its own limit (LIMIT below),
# cut to what is left of TOTAL_S: the default steps' limits add up to 480 s and the unpacking to
# a few seconds, so none is cut; where the selected steps' limits exceed TOTAL_S the summary says
# so first. The limits are budgets set before any run on a GPU machine: summary.md gives each
# step's duration to set them from.
# The GPU machine's image has CUDA, PyTorch, transformers, h5py and numpy, but not MPI, HDF5 or
# OpenBLAS: the bundle brings them, and LD_LIBRARY_PATH (the bundle's libraries, then CUDA's) is
# set for the bundle's programs only, through wrappers in $WORK/bin (python, nvidia-smi,
# cuobjdump and compute-sanitizer run in the machine's own environment).
#
# Steps, in this order (the most telling first), with their limits in seconds; one summary,
# $OUT/summary.md, and every step's log in $OUT/logs.tar.gz:
#   env         30  GPU, driver, toolkit; the bundle's device code is sm_90 (cuobjdump; its
#                   absence fails the step: nothing here would check it). No GPU: stops here.
#   gtest       120 tests/gpu on non-blocking streams, every suite (CudaShards.* on 1 rank among
#                   them); failed if a test fails, if none ran, or if any skipped (no device, no
#                   NCCL): a run of skips is no pass
#   quickstart  140 the quickstart job with sweeps (topk, batchtopk, relu, jumprelu) on cuda and
#                   on cpu (bench/gpu/compare_runs.py, h5py): the stores identical; each SAE
#                   within 1e-4 of the CPU's (relative to each tensor's largest value); stats of
#                   the CPU's SAE on cuda and on cpu: counts identical, floats within 1e-4; 2
#                   ranks sharing the GPU (MPI host path) against 1 rank: train within 1e-5,
#                   stats counts identical
#   shards      110 latent sharding on a 1 x 2 grid (2 ranks on the one GPU: the shard group's
#                   sums through MPI and host memory): the quickstart's store trained with
#                   latent_shards = 2 (topk, batchtopk, relu, jumprelu; 128 steps) on cuda and on
#                   cpu, each SAE within 1e-4 of the CPU's; stats of the CPU's SAE with
#                   latent_shards = 2 on each device (counts identical, floats within 1e-4); the
#                   CUDA sharded tests (tests/gpu CudaShards.*: step and stats passes) under
#                   mpirun -np 2, failed if any skipped
#   harvest     80  a tiny GPT-2 harvested on cuda and cpu (within 1e-5 of |cpu| + rms, fp32);
#                   stats of one SAE on one store on each device (CE loss spliced on the GPU:
#                   within 1e-4); the CUDA GPT-2 against transformers' GPT2Model (hf_parity.py)
#   sanitizer   200 (second call) compute-sanitizer on the training steps' tests: memcheck
#                   --leak-check full (CudaShards.* among them), the NCCL communicator's test
#                   without leak checking (NCCL keeps allocations of its own), racecheck on the
#                   forward/backward of every architecture
#   bench       150 (second call) the TopK step (d 768, d_sae 32768, k 32, batches 4096 and
#                   16384, bf16 and fp32: saepipe_bench_gpu) beside a plain PyTorch step
#                   (torch_topk_step.py), eai-sparsify and sae-lens (bench/peers, when
#                   importable: carry their wheels in .whl), all on one batch; harvest tokens/s
#                   against transformers' forward
# Exit status: the number of failed steps. Every figure is what that machine measured on that
# run; none is written into the repository.
# shellcheck disable=SC2317  # the steps' functions run through step(), which shellcheck cannot follow
set -uo pipefail
set -a  # every variable below reaches the steps, which run in a fresh bash under timeout
SRC=$(cd "$(dirname "$0")/../.." && pwd)
cd "$SRC" || exit 1
OUT=${OUT:-$SRC/gpu-results}
WORK=${GPU_WORK:-/tmp/saepipe_gpu}
TOTAL_S=${TOTAL_S:-500}
# To check this script on a machine without a GPU: CHECK_DEVICE=cpu runs the jobs with "cpu" where
# "cuda" stands (the comparisons then check the checker), STEPS the steps named only.
DEVICE=${CHECK_DEVICE:-cuda}
STEPS=" ${STEPS:-env gtest quickstart shards harvest} "
# Each step's time limit (s), as the header lists them.
declare -A LIMIT=([env]=30 [gtest]=120 [quickstart]=140 [shards]=110 [harvest]=80 [sanitizer]=200 [bench]=150)
LIMIT_SCALE=${LIMIT_SCALE:-1}  # step time limits times this (a slow machine checking the script)
CPU_THREADS=${CPU_THREADS:-16}  # the CPU reference runs (the GPU machine has 16 cores)
rm -rf "$WORK/logs"
mkdir -p "$OUT" "$WORK/logs"
SUMMARY=$OUT/summary.md
LOGS=$WORK/logs  # one log per step and the JSON results: $OUT/logs.tar.gz (few files come back)
START=$SECONDS
failed=0
: >"$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }
# step NAME COMMAND...: runs it, its output in $LOGS/NAME.log, under LIMIT[NAME] or what is
# left of TOTAL_S; records the status and the duration.
step() {
  local name=$1 limit=$((LIMIT[$1] * LIMIT_SCALE)) left=$((TOTAL_S - (SECONDS - START)))
  shift
  [[ "$STEPS" == *" $name "* ]] || { note "- $name: not selected (STEPS)"; return 0; }
  ((limit > left)) && limit=$left
  if ((limit < 15)); then
    note "- $name: FAILED (not run: the ${TOTAL_S} s are spent)"
    failed=$((failed + 1))
    return 1
  fi
  local t0=$SECONDS
  # timeout runs programs, not functions: the step's function in a bash that has them all.
  timeout --kill-after=10 "$limit" bash -c "$(declare -f); set -uo pipefail; $(printf '%q ' "$@")" >>"$LOGS/$name.log" 2>&1
  local rc=$?
  local why="exit $rc"
  ((rc == 124 || rc == 137)) && why="time limit of $limit s"
  note "- $name: $( ((rc == 0)) && echo ok || echo "FAILED ($why)") in $((SECONDS - t0)) s"
  ((rc == 0)) || failed=$((failed + 1))
  return $rc
}
note "# run.device = cuda checks ($(date -u +%FT%TZ))"
planned=0
for s in $STEPS; do planned=$((planned + ${LIMIT[$s]:?"STEPS: no step named $s"} * LIMIT_SCALE)); done
note "steps:$STEPS(limits $planned s of TOTAL_S $TOTAL_S s)"
((planned <= TOTAL_S)) || note "the selected steps' limits exceed TOTAL_S: the last ones get only what is left"

# ---- the bundle, and wrappers that give only its programs its libraries
BUNDLE=$WORK/bundle
rm -rf "$BUNDLE" && mkdir -p "$BUNDLE"
[ -f build-gpu-bundle/bundle.tar.xz ] || { note "no build-gpu-bundle/bundle.tar.xz: run bench/gpu/make_bundle.sh here first"; exit 1; }
tar -C "$BUNDLE" -xJf build-gpu-bundle/bundle.tar.xz || { note "build-gpu-bundle/bundle.tar.xz: cannot unpack"; exit 1; }
MA=lib/x86_64-linux-gnu
LIBS=$BUNDLE/lib:$BUNDLE/ompi/$MA/openmpi/lib
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && LIBS=$LIBS:$d
done
# NCCL and cuBLAS may come only with PyTorch's wheels (nvidia-*): their folders after CUDA's.
WHEELS=$(python3 -c 'import glob, os, nvidia; print(":".join(sorted({os.path.dirname(p) for d in nvidia.__path__ for p in glob.glob(d + "/*/lib/lib*.so*")})))' 2>/dev/null || true)
[ -n "$WHEELS" ] && LIBS=$LIBS:$WHEELS
BIN=$WORK/bin
rm -rf "$BIN" && mkdir -p "$BIN"
for b in "$BUNDLE"/bin/* "$BUNDLE"/ompi/bin/orterun "$BUNDLE"/ompi/bin/orted; do
  cat >"$BIN/$(basename "$b")" <<W
#!/bin/sh
export LD_LIBRARY_PATH=$LIBS OPAL_PREFIX=$BUNDLE/ompi PMIX_INSTALL_PREFIX=$BUNDLE/ompi/$MA/pmix2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_orte_launch_agent=$BIN/orted PATH=$BIN:\$PATH
exec $b "\$@"
W
  chmod +x "$BIN/$(basename "$b")"
done
ln -sf orterun "$BIN/mpirun"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8} PYTHONUNBUFFERED=1
CMP="python3 $SRC/bench/gpu/compare_runs.py"

# ---- env
env_check() {
  echo "## nvidia-smi"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  echo "## nvcc"; "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)" --version | tail -2
  echo "## bundle"; cat "$BUNDLE/BUILD_INFO"
  echo "## python"; python3 -c "import torch, transformers, numpy, h5py; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"
  echo "## libraries"
  local missing; missing=$(LD_LIBRARY_PATH=$LIBS ldd "$BUNDLE"/bin/* | grep "not found" | sort -u)
  [ -z "$missing" ] || { echo "unresolved in the bundle's programs: $missing"; return 1; }
  LD_LIBRARY_PATH=$LIBS ldd "$BUNDLE/bin/saepipe-train" | grep -E "cublas|cudart|nccl|mpi|hdf5|openblas"
  echo "## device code"
  local obj; obj=$(command -v cuobjdump || echo /usr/local/cuda/bin/cuobjdump)
  [ -x "$obj" ] || { echo "no cuobjdump on this machine: the device code cannot be checked to be sm_90"; return 1; }
  for b in saepipe-train saepipe-stats saepipe-harvest saepipe_gpu_tests saepipe_bench_gpu; do
    "$obj" --list-elf "$BUNDLE/bin/$b" | grep -q sm_90 || { echo "$b: no sm_90 code"; return 1; }
    echo "$b: sm_90"
  done
}
step env env_check
grep -E "^(NVIDIA|[A-Z].*, [0-9]+\.[0-9]+)" "$LOGS/env.log" 2>/dev/null | head -1 | sed 's/^/  GPU: /' | tee -a "$SUMMARY"
# Without a GPU every later step would only fail or skip: stop here, saying why.
if [ "$DEVICE" = cuda ] && { ! gpus=$(nvidia-smi -L 2>&1) || ! grep -q "^GPU " <<<"$gpus"; }; then
  note "no GPU visible on $(hostname) (nvidia-smi -L: $(head -1 <<<"$gpus")): the GPU steps are not run"
  tail -5 "$LOGS/env.log" | sed 's/^/  /' | tee -a "$SUMMARY"
  tar -C "$WORK" -czf "$OUT/logs.tar.gz" logs
  exit 1
fi

# ---- gtest
gtest() {
  "$BIN/saepipe_gpu_tests" --gtest_output=xml:"$LOGS/gtest.xml"
  local rc=$? passed skipped
  passed=$(grep -oE "^\[  PASSED  \] [0-9]+" "$LOGS/gtest.log" | awk '{s += $4} END {print s + 0}')
  skipped=$(grep -oE "^\[  SKIPPED \] [0-9]+ test" "$LOGS/gtest.log" | awk '{s += $4} END {print s + 0}')
  echo "gtest: exit $rc, $passed passed, $skipped skipped"
  ((rc == 0 && passed > 0 && skipped == 0))
}
step gtest gtest
grep -E "^gtest: |^\[  FAILED  \] [A-Za-z]" "$LOGS/gtest.log" 2>/dev/null | sed 's/^/  /' | tee -a "$SUMMARY"

# ---- the quickstart on cuda and on cpu; 2 ranks on the one GPU
QS=$WORK/qs
qs_job() {  # NAME DEVICE [SAE]: the quickstart, sweeps of the other architectures, stats of SAE
  local short=()  # checking the script on a CPU: 16 training steps, not 512
  [ "$DEVICE" = cpu ] && short=(-e "s/^n_tokens = 2097152$/n_tokens = 65536/")
  sed -e "s/^name = \"quickstart\"/name = \"$1\"\ndevice = \"$2\"/" "${short[@]}" \
    ${3:+-e "s|^\[stats\]|[stats]\nsae = \"$3\"|"} "$SRC/jobs/quickstart.toml"
  printf '[[train.sweep]]\nname = "batchtopk"\narchitecture = "batchtopk"\n'
  printf '[[train.sweep]]\nname = "relu"\narchitecture = "relu"\nl1_coef = 0.3\n'
  printf '[[train.sweep]]\nname = "jumprelu"\narchitecture = "jumprelu"\n'
}
quickstart() {
  rm -rf "$QS" && mkdir -p "$QS" && cd "$QS" || return 1
  qs_job qcpu cpu >cpu.toml
  qs_job qcuda "$DEVICE" runs/qcpu/sae/sae.h5 >cuda.toml
  qs_job qcuda2 "$DEVICE" runs/qcpu/sae/sae.h5 >cuda2.toml
  local s ok=0
  for s in harvest train stats; do OMP_NUM_THREADS=$CPU_THREADS "$BIN/saepipe-$s" --job cpu.toml || return 1; done
  for s in harvest train stats; do "$BIN/saepipe-$s" --job cuda.toml || return 1; done
  # 2 ranks on the one GPU: gradients and stats reductions through MPI and host memory.
  "$BIN/saepipe-harvest" --job cuda2.toml || return 1
  for s in train stats; do "$BIN/mpirun" -np 2 --bind-to none -x OMP_NUM_THREADS=4 "$BIN/saepipe-$s" --job cuda2.toml || return 1; done
  grep -E "^device = .$DEVICE.$" runs/qcuda/job.resolved.toml || { echo "runs/qcuda/job.resolved.toml: no device = $DEVICE"; ok=1; }
  $CMP store runs/qcuda/activations runs/qcpu/activations || ok=1
  for s in "" sweep/batchtopk/ sweep/relu/ sweep/jumprelu/; do
    $CMP sae "runs/qcuda/sae/${s}sae.h5" "runs/qcpu/sae/${s}sae.h5" --tol 1e-4 || ok=1
  done
  $CMP stats runs/qcuda/stats runs/qcpu/stats --tol 1e-4 || ok=1
  $CMP sae runs/qcuda2/sae/sae.h5 runs/qcuda/sae/sae.h5 --tol 1e-5 || ok=1
  $CMP stats runs/qcuda2/stats runs/qcuda/stats --tol 1e-5 || ok=1
  return "$ok"
}
step quickstart quickstart
grep -E "^(store|sae|stats|summary)[^/]*: (ok|OUT)|^sae |DIFFERENT|^no device" "$LOGS/quickstart.log" 2>/dev/null | sed 's/^/  /' | tee -a "$SUMMARY"

# ---- latent sharding: a 1 x 2 grid on cuda against cpu (pipeline/sae/cuda/train_step_sharded.cu)
SH=$WORK/shards
sh_job() {  # NAME DEVICE: the quickstart's store and SAE, 128 steps on a 1 x 2 grid, every sharded architecture
  local steps=524288
  [ "$DEVICE" = cpu ] && steps=65536  # checking the script on a CPU: 16 steps
  sed -e "s/^name = \"quickstart\"/name = \"$1\"\ndevice = \"$2\"/" -e "s/^n_tokens = 2097152$/n_tokens = $steps/" \
    -e "s|^\[train\]|[resources.train]\nlatent_shards = 2\n\n[train]\nactivations = \"$SH/runs/scpu/activations\"|" \
    -e "s|^\[stats\]|[resources.stats]\nlatent_shards = 2\n\n[stats]\nactivations = \"$SH/runs/scpu/activations\"\nsae = \"$SH/runs/scpu/sae/sae.h5\"|" \
    "$SRC/jobs/quickstart.toml"
  printf '[[train.sweep]]\nname = "batchtopk"\narchitecture = "batchtopk"\n'
  printf '[[train.sweep]]\nname = "relu"\narchitecture = "relu"\nl1_coef = 0.3\n'
  printf '[[train.sweep]]\nname = "jumprelu"\narchitecture = "jumprelu"\n'
}
shards() {
  rm -rf "$SH" && mkdir -p "$SH" && cd "$SH" || return 1
  sh_job scpu cpu >cpu.toml
  sh_job scuda "$DEVICE" >cuda.toml
  local s ok=0 passed skipped
  OMP_NUM_THREADS=$CPU_THREADS "$BIN/saepipe-harvest" --job cpu.toml || return 1
  "$BIN/mpirun" -np 2 --bind-to none -x OMP_NUM_THREADS=8 "$BIN/saepipe-train" --job cpu.toml || return 1
  "$BIN/mpirun" -np 2 --bind-to none -x OMP_NUM_THREADS=4 "$BIN/saepipe-train" --job cuda.toml 2>&1 | tee train_cuda.log
  ((PIPESTATUS[0] == 0)) || return 1
  # The sharded step on the device, not a fallback: its own description in the train log.
  grep -q "step on $DEVICE (.*latents 0\.\.255 of 512 on a grid of 1 x 2" train_cuda.log ||
    { echo "train_cuda.log: no $DEVICE sharded step on the 1 x 2 grid"; ok=1; }
  for s in "" sweep/batchtopk/ sweep/relu/ sweep/jumprelu/; do
    $CMP sae "runs/scuda/sae/${s}sae.h5" "runs/scpu/sae/${s}sae.h5" --tol 1e-4 || ok=1
  done
  # Stats of the CPU's topk SAE on the 1 x 2 grid, on each device.
  for s in cpu cuda; do
    "$BIN/mpirun" -np 2 --bind-to none -x OMP_NUM_THREADS=4 "$BIN/saepipe-stats" --job "$s.toml" || return 1
  done
  $CMP stats runs/scuda/stats runs/scpu/stats --tol 1e-4 || ok=1
  [ "$DEVICE" = cuda ] || return "$ok"
  "$BIN/mpirun" -np 2 --bind-to none -x OMP_NUM_THREADS=4 "$BIN/saepipe_gpu_tests" --gtest_filter='CudaShards.*' \
    2>&1 | tee gtest_shards.log
  ((PIPESTATUS[0] == 0)) || ok=1
  passed=$(grep -oE "^\[  PASSED  \] [0-9]+" gtest_shards.log | awk '{s += $4} END {print s + 0}')
  skipped=$(grep -oE "^\[  SKIPPED \] [0-9]+ test" gtest_shards.log | awk '{s += $4} END {print s + 0}')
  echo "gtest CudaShards.* on 2 ranks: $passed passed, $skipped skipped"
  ((passed > 0 && skipped == 0)) || ok=1
  return "$ok"
}
step shards shards
grep -E "^sae |^(stats|summary)[^/]*: (ok|OUT)|DIFFERENT|^gtest CudaShards|no .* sharded step" "$LOGS/shards.log" 2>/dev/null | sed 's/^/  /' | tee -a "$SUMMARY"

# ---- a tiny GPT-2: harvest and stats (CE loss spliced) on cuda against cpu; the CUDA GPT-2 against transformers
HV=$WORK/hv
gpt2_job() {  # NAME DEVICE [STORE SAE]
  printf '[run]\nname = "%s"\ndevice = "%s"\n' "$1" "$2"
  printf '[harvest]\nsource = "model"\nmodel = "model"\ntokens = "tokens.bin"\ntoken_format = "uint16"\n'
  printf 'hooks = ["blocks.1.hook_resid_post", "blocks.0.hook_mlp_out"]\nn_tokens = 65536\ncontext = 128\n'
  printf 'shard_tokens = 16384\nbatch_sequences = 16\n'
  printf '[train]\nhook = "blocks.1.hook_resid_post"\nd_sae = 512\nk = 16\nlr = 0.001\nn_tokens = 131072\n'
  printf 'dead_tokens = 20000\nauxk = 32\n'
  printf '[stats]\nce_loss_tokens = 4096\n'
  [ $# -gt 2 ] && printf 'activations = "%s"\nsae = "%s"\n' "$3" "$4"
  printf '[interpret]\nmax_features = 0\n'
}
harvest() {
  rm -rf "$HV" && mkdir -p "$HV" && cd "$HV" || return 1
  python3 -c "import sys; sys.path.insert(0, '$SRC/bench/gpu'); import hf_parity; hf_parity.write_model('model', 2, 128, 4, 500, 256, 3)" || return 1
  python3 -c "import numpy as np; np.random.default_rng(1).integers(0, 500, 70000).astype('<u2').tofile('tokens.bin')" || return 1
  gpt2_job gcpu cpu >cpu.toml
  gpt2_job gcuda "$DEVICE" runs/gcpu/activations runs/gcpu/sae/sae.h5 >cuda.toml
  local s ok=0
  for s in harvest train stats; do OMP_NUM_THREADS=$CPU_THREADS "$BIN/saepipe-$s" --job cpu.toml || return 1; done
  for s in harvest stats; do "$BIN/saepipe-$s" --job cuda.toml || return 1; done
  $CMP store runs/gcuda/activations runs/gcpu/activations --tol 1e-5 || ok=1
  $CMP stats runs/gcuda/stats runs/gcpu/stats --tol 1e-4 || ok=1
  [ "$DEVICE" = cuda ] || return "$ok"
  python3 "$SRC/bench/gpu/hf_parity.py" --tool "$BIN/saepipe_gpt2_cuda" --work "$HV/hf" --shapes small,gpt2s \
    --precisions fp32,bf16 --no-cpu --json "$LOGS/hf_parity.json" || ok=1
  return "$ok"
}
step harvest harvest
grep -E "^store activations/.*tolerance|^(store|stats): |summary ce_|DIFFERENT|^(PASS|FAIL|ok|max)" "$LOGS/harvest.log" 2>/dev/null | sed 's/^/  /' | tee -a "$SUMMARY"

# ---- compute-sanitizer (the machine's own environment; the test binary through its wrapper)
SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
sanitize() {
  [ -x "$SAN" ] || { echo "no compute-sanitizer on this machine"; return 1; }
  local t=$BIN/saepipe_gpu_tests
  "$SAN" --tool memcheck --leak-check full --error-exitcode 9 "$t" --gtest_brief=1 \
    --gtest_filter='Cuda.ForwardBackward*:Cuda.TrainStep*:Cuda.Adam*:Cuda.Staged*:CudaShards.*' || return 1
  # NCCL keeps allocations of its own past the communicator's destruction: no leak check.
  "$SAN" --tool memcheck --error-exitcode 9 "$t" --gtest_brief=1 --gtest_filter='Cuda.Nccl*' || return 1
  "$SAN" --tool racecheck --error-exitcode 9 "$t" --gtest_brief=1 \
    --gtest_filter='Cuda.ForwardBackwardMatchesCpuForEveryArchitecture' || return 1
}
step sanitizer sanitize
grep -E "ERROR SUMMARY|RACECHECK SUMMARY|LEAK SUMMARY" "$LOGS/sanitizer.log" 2>/dev/null | sed 's/^/  /' | tee -a "$SUMMARY"

# ---- benchmarks: the step beside PyTorch and the peers, harvest beside transformers
bench() {
  local X=$WORK/batch.f32 J=$LOGS/bench.jsonl
  python3 bench/peers/make_batch.py "$X" --d 768 --batch 16384 || return 1
  "$BIN/saepipe_bench_gpu" --d 768 --f 32768 --k 32 --batches 4096,16384 --precisions bf16,fp32 --iters 10 \
    --x "$X" --json "$LOGS/bench_step.json" || return 1
  for n in 4096 16384; do
    for p in bf16 fp32; do
      python3 bench/gpu/torch_topk_step.py --x "$X" --d 768 --f 32768 --k 32 --batch "$n" --precision "$p" --json "$J" || return 1
    done
  done
  # The peers, when this machine's Python has them (.whl carried: installed to /tmp/site).
  if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl &&
      export PYTHONPATH=/tmp/site
  fi
  local peer extra
  for peer in sparsify sae_lens; do
    extra=()
    [ "$peer" = sparsify ] && extra=(--work "$WORK/sp")
    if python3 -c "import $peer" 2>/dev/null; then
      python3 -c "import numpy as np; np.fromfile('$X', dtype='<f4')[:4096 * 768].tofile('$X.4096')"
      python3 "bench/peers/train_${peer/sae_lens/saelens}.py" --x "$X.4096" --d 768 --f 32768 --k 32 --lr 1e-4 \
        --dead-fractions 0 --warmup 2 --steps 5 --device cuda --json "$LOGS/peer_$peer.json" "${extra[@]}" ||
        echo "peer $peer: FAILED"
    else
      echo "peer $peer: not installed on this machine (carry its wheels in .whl)"
    fi
  done
  local M=$WORK/hv/hf/model_gpt2s
  [ -e "$M/model.safetensors" ] || python3 -c "import sys; sys.path.insert(0, 'bench/gpu'); import hf_parity; hf_parity.write_model('$M', 12, 768, 12, 50257, 1024, 7)"
  "$BIN/saepipe_gpt2_cuda" bench --model "$M" --context 128 --batch 64 --tokens 1048576 --precision bf16 \
    --json "$LOGS/bench_harvest.jsonl" || return 1
  python3 bench/gpu/hf_forward_bench.py "$M" --context 128 --batch 64 --tokens 1048576 --dtype bf16 --attn sdpa \
    --json "$LOGS/bench_harvest.jsonl" || return 1
  # The harvest stage itself on cuda (the generic decoder in fp32, the store written): its own
  # "done: ... tokens/s" line, model loading excluded.
  local HB=$WORK/hb
  rm -rf "$HB" && mkdir -p "$HB" || return 1
  python3 -c "import numpy as np; np.random.default_rng(2).integers(0, 50256, 300000).astype('<u2').tofile('$HB/tokens.bin')" || return 1
  printf '[run]\nname = "hb"\ndevice = "%s"\n[harvest]\nsource = "model"\nmodel = "%s"\ntokens = "tokens.bin"\n' "$DEVICE" "$M" >"$HB/job.toml"
  printf 'token_format = "uint16"\nhooks = ["blocks.8.hook_resid_post"]\nn_tokens = 262144\ncontext = 128\n' >>"$HB/job.toml"
  printf 'shard_tokens = 65536\nbatch_sequences = 64\n' >>"$HB/job.toml"
  (cd "$HB" && "$BIN/saepipe-harvest" --job job.toml) || return 1
}
step bench bench
grep -E "harvest.*done: .*tokens/s" "$LOGS/bench.log" 2>/dev/null | sed 's/^/  harvest stage, GPT-2-small shape, cuda fp32, context 128: /' | tee -a "$SUMMARY"
python3 - "$LOGS" <<'P' >>"$SUMMARY" 2>&1
import json, os, sys
out = sys.argv[1]
print("\n| TopK step, d 768, d_sae 32768, k 32 | N | tokens/s |\n|---|---|---|")
try:
    for r in json.load(open(f"{out}/bench_step.json"))["runs"]:
        print(f"| saepipe {r['precision']} (train step, {r['step_tflops']:.0f} TFLOP/s) | {r['n']} | {r['tokens_per_s']:,.0f} |")
except Exception as e:
    print(f"| saepipe | - | no result ({e}) |")
for line in open(f"{out}/bench.jsonl") if os.path.exists(f"{out}/bench.jsonl") else []:
    r = json.loads(line)
    print(f"| plain PyTorch {r['precision']} | {r['n']} | {r['tokens_per_s']:,.0f} |")
for peer in ("sparsify", "sae_lens"):
    p = f"{out}/peer_{peer}.json"
    if os.path.exists(p):
        for r in json.load(open(p)).get("runs", []):
            t = sorted(r["seconds"][r.get("warmup", 0):] or r["seconds"])  # per step, after warm-up
            print(f"| {peer} {r['versions']} (median of {len(t)} steps) | {r['batch']} | {r['batch'] / t[len(t) // 2]:,.0f} |")
    else:
        print(f"| {peer} | 4096 | not run (see bench.log) |")
print("\n| harvest, GPT-2-small shape, context 128 | tokens/s |\n|---|---|")
if os.path.exists(f"{out}/bench_harvest.jsonl"):
    for line in open(f"{out}/bench_harvest.jsonl"):
        r = json.loads(line)
        if "transformers" in r:
            print(f"| transformers {r['transformers']} {r['dtype']} | {r['truncated+d2h']['tokens_per_s']:,.0f} |")
        else:
            print(f"| saepipe {r['precision']} pass | {r['device_tokens_per_s']:,.0f} |")
P
note ""
note "failed steps: $failed; $((SECONDS - START)) s"
tar -C "$WORK" -czf "$OUT/logs.tar.gz" logs
exit "$failed"
