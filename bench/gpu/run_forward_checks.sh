#!/usr/bin/env bash
# The GPU checks of the CUDA GPT-2 forward pass and stats passes (issue 7), prepared to run in
# one call on an H100 / H200 machine (about 4-6 minutes), from the repository root:
#
#   here:        bash bench/gpu/make_forward_bundle.sh          # build for sm_90 + pack (~35 MB)
#   GPU machine: bash bench/gpu/run_forward_checks.sh [BUNDLE]  # carry ["build-gpufwd-bundle"]
#
# The GPU machine has nvcc and CMake but none of the project's C++ dependencies (MPI, HDF5,
# toml++, CLI11, GTest, OpenBLAS), so the build is made here (step 1 checks it is sm_90 code and
# that every library resolves there). Steps, each under its own timeout; results in $OUT (or
# ./forward_checks_out), at most 8 files:
#   env.txt              GPU, driver, libraries found, sm_90 check, python packages
#   gtest_forward.log    step 2: tests/gpu/test_cuda_gpt2.cpp + test_cuda_stats.cpp (parity with
#   gtest_forward.xml            the CPU reference at every hook; stats bit for bit)
#   hf_parity.log/.json  step 3: bench/gpu/hf_parity.py, against transformers' GPT2Model (float64)
#   bench.log, bench.jsonl  step 4: harvest throughput, GPT-2-small shape (12 x 768, vocab 50257),
#                        hook blocks.8.hook_resid_post, contexts 128 and 1024: saepipe's pass alone,
#                        its harvest loop with and without HDF5 writing, and transformers' forward
#                        (output_hidden_states) on the same GPU
#   summary.md           the table of step 4 and the pass / fail lines of steps 2 and 3
# Every figure is what that machine measured on that run; none of them is in the repository.
set -uo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
PACKED=${1:-$SRC/build-gpufwd-bundle}
R=${OUT:-$SRC/forward_checks_out}
WORK=${FWD_WORK:-/tmp/saepipe_fwd}
mkdir -p "$R" "$WORK"
if [ -f "$PACKED/bundle.tar.xz" ]; then
  rm -rf "$WORK/bundle" && mkdir -p "$WORK/bundle" && tar -C "$WORK/bundle" -xJf "$PACKED/bundle.tar.xz"
  BUNDLE=$WORK/bundle
elif [ -d "$PACKED/bin" ]; then
  BUNDLE=$(cd "$PACKED" && pwd)
else
  echo "no bundle at $PACKED: run bench/gpu/make_forward_bundle.sh here first and carry it" >&2
  exit 2
fi
START=$(date +%s)
elapsed() { echo $(( $(date +%s) - START )); }
BUDGET=${FWD_BUDGET_S:-420}  # steps that would start after this many seconds are skipped
cd "$SRC"
export PYTHONUNBUFFERED=1

# ---- 1. environment and libraries
LIBS=$BUNDLE/lib
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && LIBS=$LIBS:$d
done
PYNV=$(python3 - <<'P' 2>/dev/null
import os
try:
    import nvidia
    print(":".join(os.path.join(p, s, "lib") for p in nvidia.__path__ for s in sorted(os.listdir(p))
                   if os.path.isdir(os.path.join(p, s, "lib"))))
except Exception:
    pass
P
)
[ -n "$PYNV" ] && LIBS=$LIBS:$PYNV
# Wrappers: the bundle's libraries for our binaries only (python's numpy must not see them).
for b in saepipe_gpu_tests saepipe_gpt2_cuda; do
  printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s "$@"\n' "$LIBS" "$BUNDLE/bin/$b" > "$WORK/$b"
  chmod +x "$WORK/$b"
done
{
  echo "== $(date -u) on $(hostname)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
  echo "== glibc: $(ldd --version 2>&1 | head -1)"
  echo "== bundle: $(cat "$BUNDLE/SOURCE.txt" 2>/dev/null | head -1)"
  command -v cuobjdump >/dev/null && cuobjdump --list-elf "$BUNDLE/bin/saepipe_gpt2_cuda" 2>&1 | head -5
  for b in saepipe_gpu_tests saepipe_gpt2_cuda; do
    echo "== ldd $b"; LD_LIBRARY_PATH=$LIBS ldd "$BUNDLE/bin/$b" | grep -E "not found|cublas|nccl|blas|hdf5"
  done
  python3 -c "import torch, transformers, numpy; print('torch', torch.__version__, 'transformers', transformers.__version__, 'numpy', numpy.__version__)" 2>&1
} > "$R/env.txt" 2>&1
cat "$R/env.txt"
if LD_LIBRARY_PATH=$LIBS ldd "$BUNDLE/bin/saepipe_gpu_tests" "$BUNDLE/bin/saepipe_gpt2_cuda" | grep -q "not found"; then
  echo "missing libraries (env.txt): the steps below cannot run" | tee -a "$R/summary.md"
  exit 1
fi

# ---- 2. parity tests (gtest)
echo "== [$(elapsed) s] step 2: gtest"
timeout 240 "$WORK/saepipe_gpu_tests" --gtest_filter='CudaGpt2*:CudaStats*' \
  --gtest_output="xml:$R/gtest_forward.xml" > "$R/gtest_forward.log" 2>&1
GTEST_RC=$?
tail -40 "$R/gtest_forward.log"
# gtest exits 0 when every test skipped (no device): such a run is a failure here.
PASSED=$(grep -oE "^\[  PASSED  \] [0-9]+ test" "$R/gtest_forward.log" | grep -oE "[0-9]+" | tail -1)
if [ "$GTEST_RC" -eq 0 ] && { [ "${PASSED:-0}" -eq 0 ] || grep -q "no CUDA device" "$R/gtest_forward.log"; }; then
  echo "gtest: no test ran on a device (${PASSED:-0} passed)"; GTEST_RC=77
fi

# ---- 3. against Hugging Face transformers
echo "== [$(elapsed) s] step 3: hf_parity"
timeout 200 python3 bench/gpu/hf_parity.py --tool "$WORK/saepipe_gpt2_cuda" --work "$WORK/hf" \
  --shapes small,gpt2s --precisions fp32,bf16,fp16 --json "$R/hf_parity.json" > "$R/hf_parity.log" 2>&1
HF_RC=$?
cat "$R/hf_parity.log" | grep -vE "^\s*matmul" | tail -40

# ---- 4. throughput
echo "== [$(elapsed) s] step 4: throughput"
MODEL=$WORK/hf/model_gpt2s
if [ ! -e "$MODEL/model.safetensors" ]; then
  python3 -c "import sys; sys.path.insert(0, 'bench/gpu'); import hf_parity; hf_parity.write_model('$MODEL', 12, 768, 12, 50257, 1024, 7)"
fi
: > "$R/bench.jsonl"
run() {  # run TIMEOUT LABEL CMD...
  local t=$1 label=$2; shift 2
  if [ "$(elapsed)" -gt "$BUDGET" ]; then echo "skipped (time budget): $label" | tee -a "$R/bench.log"; return; fi
  echo "-- [$(elapsed) s] $label" | tee -a "$R/bench.log"
  timeout "$t" "$@" >> "$R/bench.log" 2>&1 || echo "FAILED ($?): $label" | tee -a "$R/bench.log"
}
TOK=${FWD_TOKENS:-1048576}
for spec in "128 64" "1024 8"; do
  set -- $spec
  T=$1 B=$2
  run 120 "saepipe bf16 T=$T B=$B (+ HDF5 float32)" "$WORK/saepipe_gpt2_cuda" bench --model "$MODEL" --context "$T" \
    --batch "$B" --tokens "$TOK" --precision bf16 --write "$WORK/shards" --dtype float32 --json "$R/bench.jsonl"
  run 90 "transformers bf16 sdpa T=$T B=$B" python3 bench/gpu/hf_forward_bench.py "$MODEL" --context "$T" --batch "$B" \
    --tokens "$TOK" --dtype bf16 --attn sdpa --json "$R/bench.jsonl"
done
run 90 "saepipe fp32 T=128 B=64" "$WORK/saepipe_gpt2_cuda" bench --model "$MODEL" --context 128 --batch 64 \
  --tokens "$TOK" --precision fp32 --json "$R/bench.jsonl"
run 90 "transformers fp32 eager T=128 B=64" python3 bench/gpu/hf_forward_bench.py "$MODEL" --context 128 --batch 64 \
  --tokens "$TOK" --dtype fp32 --attn eager --json "$R/bench.jsonl"
run 90 "saepipe bf16 T=128 B=64 unfused epilogues" "$WORK/saepipe_gpt2_cuda" bench --model "$MODEL" --context 128 \
  --batch 64 --tokens "$TOK" --precision bf16 --unfused --json "$R/bench.jsonl"
rm -rf "$WORK/shards"

# ---- 5. summary
python3 - "$R" "$GTEST_RC" "$HF_RC" <<'P' > "$R/summary.md" 2>&1
import json, sys, re
r, gtest_rc, hf_rc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
print("# Forward-pass GPU checks (measured on this run's machine)\n")
log = open(f"{r}/gtest_forward.log").read() if gtest_rc != 124 else ""
m = re.findall(r"\[  (PASSED|FAILED|SKIPPED) +\] (\d+) tests?", log)
print(f"- gtest (CudaGpt2*, CudaStats*): exit {gtest_rc}; " + ", ".join(f"{n} {s.lower()}" for s, n in m))
for line in log.splitlines():
    if line.startswith("[  FAILED  ]") and "listed below" not in line:
        print(f"  - {line[13:]}")
try:
    hf = json.load(open(f"{r}/hf_parity.json"))
    print(f"- hf_parity (transformers, float64 reference): exit {hf_rc}, ok={hf['ok']}")
    for x in hf["results"]:
        if "error" in x:
            print(f"  - {x['shape']} {x['run']}: ERROR")
        else:
            print(f"  - {x['shape']} {x['run']}: tensor {x['worst_tensor']:.2e} ({x['worst_hook']}), element "
                  f"{x['worst_element']:.2e}" + ("" if x["tolerance"] is None else f", {'pass' if x['passed'] else 'FAIL'} at {x['tolerance']:g}"))
except Exception as e:
    print(f"- hf_parity: exit {hf_rc}, no results ({e})")
print("\n| run | T | B | tokens/s | notes |\n|---|---|---|---|---|")
for line in open(f"{r}/bench.jsonl"):
    j = json.loads(line)
    if "transformers" in j:
        for k in ("full", "truncated", "truncated+d2h"):
            print(f"| transformers {j['transformers']} {j['dtype']} {j['attn']} {k} | {j['context']} | {j['batch_sequences']} "
                  f"| {j[k]['tokens_per_s']:,.0f} | {j[k]['layers_run']} layers |")
    else:
        name = f"saepipe {j['precision']}" + ("" if j["fused_epilogues"] else " unfused")
        print(f"| {name} pass alone | {j['context']} | {j['batch_sequences']} | {j['device_tokens_per_s']:,.0f} "
              f"| {j['blocks_run']} blocks, {j['device_ms_per_batch']:.2f} ms/batch |")
        print(f"| {name} harvest loop, forward only | {j['context']} | {j['batch_sequences']} "
              f"| {j['forward']['tokens_per_s']:,.0f} | D2H to pinned, overlapped |")
        if "harvest" in j:
            h = j["harvest"]
            print(f"| {name} harvest loop + HDF5 ({h['dtype']}) | {j['context']} | {j['batch_sequences']} "
                  f"| {h['tokens_per_s']:,.0f} | writer busy {h['writer_busy_seconds']:.1f} s, waited "
                  f"{h['waiting_for_writer_seconds']:.1f} s of {h['seconds']:.1f} s |")
P
cat "$R/summary.md"
echo "== [$(elapsed) s] done; results in $R"
[ "$GTEST_RC" -eq 0 ] && [ "$HF_RC" -eq 0 ]
