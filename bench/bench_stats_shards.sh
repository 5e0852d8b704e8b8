#!/usr/bin/env bash
# The stats stage with latent shards (issue 14), one run: a random unit-norm TopK SAE (d_in 768,
# d_sae F, k 32) written as sae.h5 by NumPy, evaluated on a synthetic store of 4096 tokens of
# d_model 768 with [resources.stats] latent_shards = S for each S in SHARDS (S ranks, one data
# group), OMP_NUM_THREADS = 1. Prints each rank's peak resident memory (/usr/bin/time -v) and
# the stage's wall time, for the default examples (20 top, 10 x 5 interval samples per latent)
# and for the fewest (1 top, none interval), which leaves the dictionary's part (W_enc, W_dec,
# the batch's pre-activations [512, F / S], the true features' match) in view. Decoder
# neighbours are off (F^2 d_in flops). Rank 0 also holds the assembled outputs it writes.
#   bash bench/bench_stats_shards.sh [--build build] [--out DIR] [--f 65536] [--shards "1 2"]
set -euo pipefail
BUILD=build OUT=/tmp/saepipe_bench_stats_shards F=65536 SHARDS="1 2"
while (($#)); do
  case "$1" in
    --build) BUILD=$2; shift 2 ;; --out) OUT=$2; shift 2 ;; --f) F=$2; shift 2 ;; --shards) SHARDS=$2; shift 2 ;;
    *) echo "bench_stats_shards.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
BIN=$(realpath "$BUILD")
[ -x "$BIN/saepipe-stats" ] || { echo "bench_stats_shards.sh: $BIN/saepipe-stats missing (bash scripts/build.sh)" >&2; exit 2; }
mkdir -p "$OUT" && cd "$OUT"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
cat > h.toml <<T
[run]
name = "bench"
dir = "run"
[harvest]
n_tokens = 4096
context = 64
shard_tokens = 4096
[harvest.synthetic]
d_model = 768
n_features = 1024
mean_active = 8.0
T
[ -e run/activations/manifest.json ] || "$BIN/saepipe-harvest" --job h.toml >h.log 2>&1
/usr/bin/python3 - "$F" <<'P'
import sys, h5py, numpy as np
D, F = 768, int(sys.argv[1])
W = np.random.default_rng(0).standard_normal((F, D), dtype=np.float32)
W /= np.linalg.norm(W, axis=1, keepdims=True)
with h5py.File("sae.h5", "w") as f:
    for name, a in (("W_enc", np.ascontiguousarray(W.T)), ("W_dec", W), ("b_enc", np.zeros(F, np.float32)),
                    ("b_dec", np.zeros(D, np.float32)), ("threshold", np.zeros(F, np.float32))):
        f.create_dataset(name, data=a, chunks=True, fletcher32=True)
    for k, v in dict(schema="saepipe.sae", version=1, architecture="topk", k=32, d_in=D, d_sae=F,
                     hook="blocks.0.hook_resid_post", tokens_seen=0, step=0, resolved_job="").items():
        f.attrs[k] = v
P
echo "machine: $(getconf _NPROCESSORS_ONLN) cores, load $(cut -d' ' -f1-3 /proc/loadavg); d_in 768, d_sae $F, 4096 tokens"
echo "| examples | S | peak RSS MB per rank (rank 0 first) | wall s |"
echo "|---|---|---|---|"
for ex in default fewest; do
  for S in $SHARDS; do
    extra=""
    [ $ex = fewest ] && extra=$'top_examples = 1\ninterval_bins = 0'
    cat > s.toml <<T
[run]
name = "bench"
dir = "s-$ex-$S"
[resources.stats]
latent_shards = $S
[stats]
activations = "$OUT/run/activations"
sae = "$OUT/sae.h5"
batch_tokens = 512
neighbours = 0
$extra
T
    rm -rf "s-$ex-$S"
    start=$(date +%s.%N)
    mpirun -q --bind-to none --oversubscribe -np "$S" bash -c '/usr/bin/time -v "$0" --job s.toml 2>"time.$OMPI_COMM_WORLD_RANK"' \
      "$BIN/saepipe-stats" >"s-$ex-$S.log"
    wall=$(echo "$(date +%s.%N) - $start" | bc)
    rss=""
    for ((r = 0; r < S; r++)); do rss="$rss $(( $(grep 'Maximum resident' time.$r | awk '{print $NF}') / 1024 ))"; done
    printf '| %s | %s | %s | %.1f |\n' "$ex" "$S" "$rss" "$wall"
  done
done
