#!/usr/bin/env bash
# Harvest throughput on a GPT-2-small-shaped random model (12 layers, d 768, 12 heads, vocab
# 50257; hook blocks.8.hook_resid_post, context 128) next to the PyTorch reference's forward
# pass over the same sequences, in the same run, with the same number of threads.
#   bench/bench_harvest_gpt2.sh [BUILD_DIR] [N_SEQ] [THREADS]     (defaults: build 32 2)
# Reports tokens/s of each, their ratio, and the share of harvest time spent waiting for HDF5
# writes (writing overlaps with computing the next shard). Needs python3-torch, and OpenBLAS
# as the system BLAS for a fair PyTorch number (../shared/REFERENCES.md).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(cd "${1:-$SRC/build}" && pwd)
N_SEQ=${2:-32}
THREADS=${3:-2}
WORK=${BENCH_WORK:-/tmp/saepipe-bench-harvest}
mkdir -p "$WORK" && cd "$WORK"
if [ ! -e gpt2s/model.safetensors ]; then
  /usr/bin/python3 "$SRC/tests/python/make_tiny_gpt2.py" gpt2s --layers 12 --d 768 --heads 12 --vocab 50257 \
    --positions 1024 --tokens $((N_SEQ * 128 + 1000))
fi
rm -rf run
cat > bench.toml <<T
[run]
name = "bench"
dir = "run"
[harvest]
source = "model"
model = "gpt2s"
tokens = "gpt2s/tokens.npy"
hooks = ["blocks.8.hook_resid_post"]
n_tokens = $((N_SEQ * 128))
context = 128
shard_tokens = 1024
batch_sequences = 8
T
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS
"$BIN/saepipe-harvest" --job bench.toml 2>&1 | tee harvest.log | tail -1
ours=$(sed -nE 's/.* ([0-9]+) tokens\/s.*/\1/p' harvest.log | tail -1)
theirs_line=$(/usr/bin/python3 "$SRC/bench/torch_gpt2_forward.py" gpt2s gpt2s/tokens.npy "$N_SEQ" 128 8 9 "$THREADS")
echo "$theirs_line"
theirs=$(echo "$theirs_line" | sed -nE 's/.* = ([0-9]+) tokens\/s/\1/p')
echo "saepipe harvest: $ours tokens/s (forward + HDF5 write), PyTorch forward only: $theirs tokens/s, ratio $(/usr/bin/python3 -c "print(f'{$ours / $theirs:.2f}')")"
