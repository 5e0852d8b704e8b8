#!/usr/bin/env bash
# Writes the files fuzz_h5 edits (tests/fuzz/data/h5/): real files of a tiny synthetic run
# (d_model 4, 512 tokens in one shard, hook "h", d_sae 8). Run once with a build:
# make_h5_seeds.sh BUILD_DIR.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(cd "$1" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
cat > seed.toml <<T
[run]
name = "seed"
dir = "run"
[harvest]
hooks = ["h"]
n_tokens = 512
context = 64
shard_tokens = 512
[harvest.synthetic]
d_model = 4
n_features = 8
mean_active = 2.0
[train]
d_sae = 8
k = 2
auxk = 4
batch_tokens = 64
n_tokens = 512
init_tokens = 64
shuffle_tokens = 256
checkpoint_every = 4
[stats]
top_examples = 3
interval_bins = 2
interval_examples = 2
neighbours = 2
T
export OMP_NUM_THREADS=1
for s in harvest train stats; do "$bin/saepipe-$s" --job seed.toml > $s.log 2>&1 || { cat $s.log; exit 1; }; done
out=$src/tests/fuzz/data/h5
mkdir -p "$out"
cp run/sae/sae.h5 run/sae/train_state.h5 run/stats/features.h5 run/stats/examples.h5 "$out/"
cp run/activations/shard-00000.h5 "$out/shard.h5"
ls -l "$out"
