#!/usr/bin/env bash
# saepipe's outputs in the real clients, from PyPI (the venv of scripts/python_env.sh; a failed
# install fails this test): a tiny GPT-2 store (BOS position excluded), SAEs of every
# architecture (topk + batchtopk, relu, jumprelu, matryoshka, gated as a sweep), stats and interpret; then
#  - SAELens loads each saelens/ export with sae.h5's weights, cfg.json is what its save_model
#    writes, the metadata survives, encode/decode match sae.h5, and ActivationsStore.from_sae
#    reproduces the store at metadata.hook_name (tests/python/check_saelens_export.py);
#  - SAEDashboard's Neuronpedia classes round-trip every batch unchanged, and the feature-extras
#    sidecars hold the neighbours (tests/python/check_neuronpedia_dashboard.py);
#  - SAEs trained and saved by SAELens are evaluated by saepipe stats (and the site built from
#    them), matching SAELens' own encode/decode (tests/python/check_saelens_import.py); what
#    saepipe cannot evaluate is one line, exit 2.
source "$(dirname "$0")/lib.sh" "$1"
export OMP_NUM_THREADS=1
VPY=$(bash "$SRC/scripts/python_env.sh") || { fail "scripts/python_env.sh could not build the venv of real clients"; finish; }
pass "venv: $VPY"

$PY "$SRC/tests/python/make_tiny_gpt2.py" tiny --layers 2 --d 32 --heads 4 --vocab 512 --positions 64 --tokens 20000 >/dev/null || fail "tiny GPT-2"
cat > job.toml <<T
[run]
name = "clients"
dir = "run"
[harvest]
source = "model"
model = "tiny"
tokens = "tiny/tokens.bin"
hooks = ["blocks.1.hook_resid_post"]
n_tokens = 8192
context = 32
shard_tokens = 2048
exclude_bos = true
[train]
architecture = "topk"
d_sae = 64
k = 4
batch_tokens = 256
n_tokens = 16384
auxk = 16
dead_tokens = 4000
init_tokens = 1024
shuffle_tokens = 2048
l1_coef = 0.3
l0_coef = 0.02
[[train.sweep]]
name = "batchtopk"
architecture = "batchtopk"
[[train.sweep]]
name = "relu"
architecture = "relu"
[[train.sweep]]
name = "jumprelu"
architecture = "jumprelu"
[[train.sweep]]
name = "matryoshka"
architecture = "matryoshka"
matryoshka_prefixes = [16, 32]
[[train.sweep]]
name = "gated"
architecture = "gated"
[stats]
ce_loss_tokens = 1024
[interpret]
neuronpedia_batch_size = 24
T
if "$BIN/saepipe" run job.toml > run.log 2>&1; then pass "pipeline ran"; else fail "pipeline: $(tail -5 run.log)"; finish; fi

$VPY "$SRC/tests/python/check_saelens_export.py" run/activations tiny run/sae run/sae/sweep/batchtopk run/sae/sweep/relu \
  run/sae/sweep/jumprelu run/sae/sweep/matryoshka run/sae/sweep/gated && pass "SAELens loads every export with its metadata" || fail "SAELens export checks"
$VPY "$SRC/tests/python/check_neuronpedia_dashboard.py" run && pass "SAEDashboard's classes round-trip the batches" \
  || fail "Neuronpedia batch checks"

# SAEs trained and saved by SAELens, evaluated by saepipe.
$VPY "$SRC/tests/python/saelens_make_saes.py" run/activations blocks.1.hook_resid_post saes > make_saes.log 2>&1 \
  && pass "SAELens trained and saved SAEs on the store" || { fail "SAELens training: $(tail -5 make_saes.log)"; finish; }
pairs=()
for s in topk batchtopk standard topk_rescale jumprelu; do
  printf '[run]\nname = "%s"\ndir = "ev_%s"\n[stats]\nactivations = "run/activations"\nsae = "saes/%s"\nce_loss_tokens = 512\n' \
    "$s" "$s" "$s" > "ev_$s.toml"
  ranks=1; [ $s = topk ] && ranks=2
  if mpirun_np $ranks "$BIN/saepipe-stats" --job "ev_$s.toml" > "ev_$s.log" 2>&1; then pairs+=("saes/$s" "ev_$s/stats")
  else fail "stats of SAELens' $s: $(tail -3 "ev_$s.log")"; fi
done
$VPY "$SRC/tests/python/check_saelens_import.py" run/activations "${pairs[@]}" \
  && pass "saepipe stats of SAELens' SAEs match SAELens' own forward pass" || fail "SAELens import checks"
"$BIN/saepipe-interpret" --job ev_topk.toml > ev_interp.log 2>&1 && [ -s ev_topk/interpret/features/0.html ] \
  && [ -s ev_topk/interpret/neuronpedia/batch-0.json ] && pass "interpret builds the site of a SAELens SAE" \
  || fail "interpret of a SAELens SAE: $(tail -3 ev_interp.log)"

bad() {  # bad NAME PATTERN: stats of saes/NAME is one line naming PATTERN, exit 2
  printf '[run]\nname = "b"\ndir = "bad_%s"\n[stats]\nactivations = "run/activations"\nsae = "saes/%s"\n' "$1" "$1" > "bad_$1.toml"
  expect_error 2 "$2" -- mpirun_np 2 "$BIN/saepipe-stats" --job "bad_$1.toml"
}
bad gated 'saes/gated/cfg.json: architecture: "gated" is not one saepipe evaluates'
bad layer_norm 'saes/layer_norm/cfg.json: normalize_activations: "layer_norm" is not supported'
bad scaled 'saes/scaled/cfg.json: normalize_activations: "expected_average_only_in" is not supported'
bad no_hook 'saes/no_hook/cfg.json: metadata.hook_name: missing'
mkdir -p saes/empty_dir
bad empty_dir 'saes/empty_dir: a directory, but not a SAELens SAE'
cp -r saes/standard saes/short && $PY - <<'P' || fail "truncate"
import os
p = "saes/short/sae_weights.safetensors"
os.truncate(p, os.path.getsize(p) - 100)
P
bad short 'saes/short/sae_weights.safetensors: tensor .* lie beyond the data section'
finish
