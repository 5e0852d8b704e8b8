#!/usr/bin/env bash
# Harvest throughput and loading memory on two modern shapes, next to transformers' own forward
# pass over the same sequences, in the same run, at the same thread count:
#   smollm2-135m   Llama-shaped 135M (d 576, 30 layers, 9 heads, 3 KV heads, MLP 1536, vocab
#                  49152), hook blocks.29.hook_resid_post (every block runs)
#   gemma2-2b-13l  Gemma 2 2B's shape cut after layer 12 (13 layers; vocab 256000), hook
#                  blocks.12.hook_resid_post (Gemma Scope's layer 12)
# Random bf16 weights written by save_pretrained (made once under the work directory).
#   bench/bench_harvest_families.sh [BUILD_DIR] [N_SEQ] [THREADS] [SHAPES...]   (defaults: build 8 2 both)
# Reports tokens/s of each side, their ratio, and the peak resident memory of each (saepipe: the
# whole harvest, loading included; transformers: right after loading).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(cd "${1:-$SRC/build}" && pwd)
N_SEQ=${2:-8}
THREADS=${3:-2}
shift $(($# < 3 ? $# : 3)) || true
SHAPES=${*:-smollm2-135m gemma2-2b-13l}
VPY=$(bash "$SRC/scripts/python_env.sh")
WORK=${BENCH_WORK:-/tmp/saepipe-bench-families}
mkdir -p "$WORK" && cd "$WORK"
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS
for shape in $SHAPES; do
  [ -e "$shape/.complete" ] || { rm -rf "$shape"; "$VPY" "$SRC/bench/torch_families_forward.py" make "$shape" "$shape" && touch "$shape/.complete"; }
  case $shape in smollm2-135m) hook=blocks.29.hook_resid_post;; *) hook=blocks.12.hook_resid_post;; esac
  "$VPY" -c "import numpy as np; np.save('tokens.npy', np.random.default_rng(1).integers(3, 40000, 100000).astype('<i4'))"
  rm -rf "run_$shape"
  cat > "$shape.toml" <<T
[run]
name = "bench"
dir = "run_$shape"
[harvest]
source = "model"
model = "$shape"
tokens = "tokens.npy"
hooks = ["$hook"]
n_tokens = $((N_SEQ * 128))
context = 128
shard_tokens = 512
batch_sequences = 8
T
  /usr/bin/time -v "$BIN/saepipe-harvest" --job "$shape.toml" > "harvest_$shape.log" 2>&1
  ours=$(sed -nE 's/.* ([0-9.]+) tokens\/s.*/\1/p' "harvest_$shape.log" | tail -1)
  rss=$(sed -nE 's/.*Maximum resident set size \(kbytes\): ([0-9]+)/\1/p' "harvest_$shape.log")
  theirs_line=$("$VPY" "$SRC/bench/torch_families_forward.py" run "$shape" tokens.npy "$N_SEQ" 128 8 "$THREADS")
  theirs=$(echo "$theirs_line" | sed -nE 's/.* = ([0-9.]+) tokens\/s.*/\1/p')
  echo "$shape: saepipe harvest $ours tokens/s (forward + HDF5 write; peak RSS $((rss / 1024)) MiB)"
  echo "$shape: $theirs_line"
  echo "$shape: ratio $("$VPY" -c "print(f'{$ours / $theirs:.2f}')")"
done
