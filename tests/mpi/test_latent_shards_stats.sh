#!/usr/bin/env bash
# The stats stage with [resources.stats] latent_shards: SAEs trained unsharded on the toy store
# (topk, and relu, jumprelu, batchtopk as sweep entries) are evaluated on grids 1x2, 2x2 and 1x4
# (data groups x latent shards), matryoshka and gated (sweep entries), a skip transcoder and a
# crosscoder (on a 3-hook store: per-layer FVU, decoder norms per layer and MMCS, the encoder's
# MMCS) on 1x2, each rank loading only its latent range of sae.h5, against the
# unsharded 1-rank stats of the same SAE: every integer dataset of features.h5 and examples.h5
# (counts, histograms, top and interval examples' rows and contexts, decoder neighbours, the
# true features' match) is identical, every float within 1e-5 relative, summary.json's figures
# too; interpret's site from them is byte-identical. (CE splicing and logit effects on a 1x2 grid:
# e2e_model_stats.) Errors, one line and exit 2:
# the rank count not divisible by latent_shards, latent_shards > d_sae, d_sae not a multiple of
# latent_shards x 256.
source "$(dirname "$(dirname "$0")")/e2e/lib.sh" "$1"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
cat > train.toml <<T
[run]
name = "sstats"
dir = "run"
seed = 5
[harvest]
n_tokens = 16384
context = 64
shard_tokens = 8192
[harvest.synthetic]
d_model = 16
n_features = 48
mean_active = 3.0
[train]
architecture = "topk"
d_sae = 1024
k = 4
batch_tokens = 512
n_tokens = 8192
lr = 0.003
auxk = 16
l1_coef = 0.3
l0_coef = 0.01
checkpoint_every = 0
[[train.sweep]]
name = "relu"
architecture = "relu"
[[train.sweep]]
name = "jumprelu"
architecture = "jumprelu"
[[train.sweep]]
name = "batchtopk"
architecture = "batchtopk"
[[train.sweep]]
name = "matryoshka"
architecture = "matryoshka"
matryoshka_prefixes = [100, 700]
[[train.sweep]]
name = "gated"
architecture = "gated"
T
"$BIN/saepipe" run train.toml --only harvest,train >train.log 2>&1 || { fail "harvest/train"; cat train.log; finish; }
# A skip transcoder and a crosscoder on a 3-hook store.
hooks='["blocks.0.hook_resid_post", "blocks.1.hook_resid_post", "blocks.2.hook_resid_post"]'
vtrain() {  # vtrain FILE RUN_DIR LINES...
  local f=$1 dir=$2
  shift 2
  printf '%s\n' '[run]' 'name = "sstatsv"' "dir = \"$dir\"" 'seed = 6' '[harvest]' "hooks = $hooks" 'n_tokens = 16384' \
    'context = 64' 'shard_tokens = 8192' '[harvest.synthetic]' 'd_model = 16' 'n_features = 48' 'mean_active = 3.0' \
    'hook_similarity = 0.5' 'hook_linear = 0.3' 'hook_noise = 0.01' '[train]' 'activations = "runv/activations"' \
    'd_sae = 512' 'k = 4' 'batch_tokens = 512' 'n_tokens = 8192' 'lr = 0.003' 'l1_coef = 0.3' 'checkpoint_every = 0' "$@" >"$f"
}
vtrain tr.toml runv 'architecture = "topk"' 'hook = "blocks.0.hook_resid_post"' 'target_hook = "blocks.1.hook_resid_post"' 'skip = true'
vtrain cc.toml runc 'architecture = "relu"' "hooks = $hooks"
"$BIN/saepipe" run tr.toml --only harvest,train >tr.log 2>&1 || { fail "harvest/train of the transcoder"; cat tr.log; }
"$BIN/saepipe-train" --job cc.toml >cc.log 2>&1 || { fail "train of the crosscoder"; cat cc.log; }
stats_job() {  # stats_job FILE RUN_DIR SAE SHARDS
  cat > "$1" <<T
[run]
name = "sstats"
dir = "$2"
[resources.stats]
latent_shards = $4
[stats]
activations = "$WORK/run/activations"
sae = "$WORK/$3"
batch_tokens = 640
T
  case $3 in runv/*|runc/*) sed -i 's|/run/activations|/runv/activations|' "$1" ;; esac
}
declare -A sae=([topk]=run/sae/sae.h5 [relu]=run/sae/sweep/relu/sae.h5 [jumprelu]=run/sae/sweep/jumprelu/sae.h5
                [batchtopk]=run/sae/sweep/batchtopk/sae.h5 [matryoshka]=run/sae/sweep/matryoshka/sae.h5
                [gated]=run/sae/sweep/gated/sae.h5 [transcoder]=runv/sae/sae.h5 [crosscoder]=runc/sae/sae.h5)
runs=""
for arch in topk relu jumprelu batchtopk matryoshka gated transcoder crosscoder; do
  grids="1x1 1x2 2x2"
  [ $arch = topk ] && grids="1x1 1x2 2x2 1x4"
  case $arch in matryoshka|gated|transcoder|crosscoder) grids="1x1 1x2" ;; esac
  for grid in $grids; do
    g=${grid%x*} s=${grid#*x}
    stats_job "s-$arch-$grid.toml" "s-$arch-$grid" "${sae[$arch]}" "$s"
    mpirun_np $((g * s)) "$BIN/saepipe-stats" --job "s-$arch-$grid.toml" >"s-$arch-$grid.log" 2>&1 \
      || { fail "stats $arch on grid $grid"; cat "s-$arch-$grid.log"; }
    [ "$grid" != 1x1 ] && runs="$runs $arch:$grid"
  done
done
grep -q "a grid of 2 x 2 (data groups x latent shards), latents 0..511 here" s-topk-2x2.log \
  && pass "2x2: each rank encodes its latent range" || { fail "no grid in the log"; cat s-topk-2x2.log; }
$PY "$SRC/tests/python/compare_sharded_stats.py" $runs && pass "stats of every grid equal the unsharded run's (counts and examples identical, floats within 1e-5)" \
  || fail "sharded stats differ from unsharded"

# interpret reads the outputs as they are: its site and Neuronpedia batch are byte-identical.
for grid in 1x1 2x2; do
  printf '[run]\nname = "sstats"\ndir = "s-topk-%s"\n[interpret]\nstats = "%s"\nmax_features = 64\n' "$grid" "$WORK/s-topk-$grid/stats" > "i-$grid.toml"
  "$BIN/saepipe-interpret" --job "i-$grid.toml" >"i-$grid.log" 2>&1 || { fail "interpret of the $grid stats"; cat "i-$grid.log"; }
done
diff -r s-topk-1x1/interpret s-topk-2x2/interpret >/dev/null && pass "interpret: the 2x2 stats' site is byte-identical to the unsharded one's" \
  || fail "interpret sites differ"

# Errors, one line each, exit 2.
stats_job e_ranks.toml erun run/sae/sae.h5 4
stats_job e_big.toml erun run/sae/sae.h5 2048
stats_job e_align.toml erun run/sae/sae.h5 3
expect_error 2 "latent_shards = 4: does not divide the 2 ranks of this run" -- mpirun_np 2 "$BIN/saepipe-stats" --job e_ranks.toml
expect_error 2 "latent_shards = 2048: is more than the SAE's d_sae = 1024" -- mpirun_np 2 "$BIN/saepipe-stats" --job e_big.toml
expect_error 2 "latent_shards = 3: d_sae = 1024 of $WORK/run/sae/sae.h5 must be a multiple of latent_shards x 256 = 768" -- mpirun_np 3 "$BIN/saepipe-stats" --job e_align.toml
finish
