#!/usr/bin/env bash
# The synthetic source's ground truth for the newer dictionaries (pipeline/model/synthetic.hpp),
# harvested by the real program on 2 ranks and checked against the independent NumPy generator
# (tests/python/check_synthetic_store.py): paired hooks for transcoders (x_in from A, x_out the
# same codes through B + a dense linear map of x_in + noise), three "layers" for crosscoders
# (per-layer directions mixing the first layer's, some features absent from a layer), and a
# hierarchical store with correlated roots (children only with their parent), and one whose
# children take their parent's coefficient (child_coefficient = "parent"). A one-hook
# store keeps the first generator's bytes (its manifest says saepipe.synthetic.v1), and bad
# settings are one-line user errors. A few seconds.
source "$(dirname "$0")/lib.sh" "$1"

harvest() {  # NAME HOOKS SYNTHETIC-SETTINGS
  cat > "$1.toml" <<T
[run]
name = "$1"
[harvest]
source = "synthetic"
hooks = $2
n_tokens = 16384
context = 64
shard_tokens = 4096
[harvest.synthetic]
d_model = 24
seed = 11
$3
T
  if "$BIN/saepipe" run "$1.toml" --ranks 2 --only harvest >"$1.log" 2>&1; then pass "$1: harvested"
  else fail "$1: harvest exit $?"; tail -5 "$1.log"; fi
}

harvest paired '["blocks.1.hook_resid_mid", "blocks.1.hook_mlp_out"]' \
  $'n_features = 60\nmean_active = 4.0\nhook_noise = 0.01\nhook_linear = 0.5'
harvest layers '["blocks.0.hook_resid_post", "blocks.1.hook_resid_post", "blocks.2.hook_resid_post"]' \
  $'n_features = 60\nmean_active = 3.0\nhook_similarity = 0.6\nhook_absent = 0.25\ndecay = 0.97'
harvest hierarchy '["blocks.0.hook_resid_post"]' \
  $'mean_active = 5.0\nchildren = 3\nchild_probability = 0.6\ncorrelation = 0.3\nn_features = 62'
harvest tied '["blocks.0.hook_resid_post"]' \
  $'mean_active = 4.0\nchildren = 3\nchild_probability = 0.9\nchild_coefficient = "parent"\nn_features = 64'
harvest plain '["blocks.0.hook_resid_post"]' $'n_features = 60\nmean_active = 4.0'

for r in paired layers hierarchy tied plain; do
  if $PY "$SRC/tests/python/check_synthetic_store.py" "runs/$r/activations"; then pass "$r: equals the NumPy generator"
  else fail "$r: differs from the NumPy generator"; fi
done
if grep -q '"saepipe.synthetic.v1"' runs/plain/activations/manifest.json && \
   ! grep -q '"children"\|"hook_noise"' runs/plain/activations/manifest.json; then pass "one hook, no hierarchy: generator v1"
else fail "the plain store's manifest changed: $(cat runs/plain/activations/manifest.json | head -c 400)"; fi
grep -q '"saepipe.synthetic.v2"' runs/paired/activations/manifest.json && pass "paired: generator v2" || fail "paired: not v2"

bad() {  # SETTINGS PATTERN
  cat > bad.toml <<T
[run]
name = "bad"
[harvest.synthetic]
n_features = 10
$1
T
  expect_error 2 "$2" -- "$BIN/saepipe" run bad.toml --only harvest
}
bad 'children = 10' 'harvest.synthetic.children (10) needs n_features >= children + 1'
bad $'children = 4\nmean_active = 4.0' 'harvest.synthetic.mean_active (4.000000) cannot exceed'
bad $'children = 2\nchild_coefficient = "tied"' 'harvest.synthetic.child_coefficient'
bad 'hook_absent = 1.0' 'harvest.synthetic.hook_absent: must be < 1'
finish
