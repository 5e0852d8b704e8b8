#!/usr/bin/env bash
# Transcoders and crosscoders on synthetic stores with known truth (pipeline/model/synthetic.hpp),
# seeds not tuned on (store seeds 23 and 29, run seed 31; the settings were tried on seeds 7, 8
# and 11 only), trained on 2 ranks and evaluated by the stats stage:
#  - paired hooks (x_in = sum c_i A_i, x_out = sum c_i B_i + noise; 48 features in d 64): a TopK
#    transcoder recovers B with its decoder (MMCS >= 0.98) and A with its encoder (MMCS >= 0.98
#    of the input direction each latent reads, C e_f, C the input covariance: summary.json
#    mmcs_encoder; the raw encoder rows are C^-1 A_i in superposition, mmcs_encoder_rows). A skip
#    transcoder beside it reconstructs at least as well (FVU), but here x -> y is linear (48
#    features in 64 dimensions: y = B A^+ x), so its skip takes the map and its latents die: its
#    MMCS is reported, not asserted (a store where the map is not linear is what skip
#    transcoders are for).
#  - three "layers" sharing features (per-layer directions mixing the first layer's, a quarter
#    of the features absent from each later layer): a TopK crosscoder recovers each layer's
#    directions with its decoder block of that layer (MMCS >= 0.98 per layer); summary.json has
#    each layer's FVU, features.h5 and the interpret pages each latent's decoder norm per layer.
#  - SAELens (the venv of scripts/python_env.sh) loads relu skip and jumprelu transcoder exports.
#  - on a hierarchical store Matryoshka absorbs less than BatchTopK at the same k (below).
# About 80 s of CPU.
source "$(dirname "$0")/lib.sh" "$1"
export OMP_NUM_THREADS=1

job() {  # NAME HOOKS SYNTHETIC TRAIN
  cat > "$1.toml" <<T
[run]
name = "$1"
seed = 31
device = "cpu"
[harvest]
source = "synthetic"
hooks = $2
n_tokens = 131072
context = 64
shard_tokens = 32768
[harvest.synthetic]
hook_noise = 0.01
$3
[train]
architecture = "topk"
k = 3
batch_tokens = 1024
n_tokens = 1000000
auxk = 32
dead_tokens = 20000
$4
[stats]
n_tokens = 0
[interpret]
max_features = 8
T
  if "$BIN/saepipe" run "$1.toml" --ranks 2 >"$1.log" 2>&1; then pass "$1: harvest, train, stats, interpret ran"
  else fail "$1: exit $?"; tail -8 "$1.log"; fi
}

job transcoder '["blocks.1.hook_resid_mid", "blocks.1.hook_mlp_out"]' \
  $'d_model = 64\nn_features = 48\nmean_active = 3.0\nseed = 23' \
  $'hook = "blocks.1.hook_resid_mid"\ntarget_hook = "blocks.1.hook_mlp_out"\nd_sae = 96\n[[train.sweep]]\nname = "skip"\nskip = true'
cat > skip_stats.toml <<T
[run]
name = "skip_stats"
device = "cpu"
[stats]
activations = "runs/transcoder/activations"
sae = "runs/transcoder/sae/sweep/skip/sae.h5"
n_tokens = 0
T
"$BIN/saepipe" run skip_stats.toml --ranks 2 --only stats >skip_stats.log 2>&1 || { fail "stats of the skip transcoder"; tail -5 skip_stats.log; }
$PY - <<'P' && pass "transcoder: B by the decoder and A by the encoder with MMCS >= 0.98; skip FVU <= plain FVU" || fail "transcoder recovery"
import json, sys
t = json.load(open("runs/transcoder/stats/summary.json"))
s = json.load(open("runs/skip_stats/stats/summary.json"))
for name, x in (("transcoder", t), ("skip transcoder", s)):
    print(f"{name}: target {x['target_hook']} mmcs (B, decoder) {x['mmcs']:.4f}  mmcs_encoder (A, C e_f) "
          f"{x['mmcs_encoder']:.4f}  encoder rows {x['mmcs_encoder_rows']:.4f}  fvu {x['fvu']:.4f}  l0 {x['l0']:.2f}  "
          f"dead {x['dead_fraction']:.3f}")
ok = t["mmcs"] >= 0.98 and t["mmcs_encoder"] >= 0.98 and t["skip"] is False and s["skip"] is True
ok &= s["fvu"] <= t["fvu"] and "ce_loss_spliced" not in t
sys.exit(0 if ok else 1)
P
[ ! -e runs/transcoder/sae/saelens ] && pass "a TopK transcoder has no SAELens export (no SAELens class)" \
  || fail "runs/transcoder/sae/saelens exists"
$PY - <<'P' && pass "sae.h5 of the skip transcoder: W_skip [d_out, d_in], target_hook, transcoder" || fail "skip transcoder sae.h5"
import h5py, sys
f = h5py.File("runs/transcoder/sae/sweep/skip/sae.h5")
a = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
ok = f["W_skip"].shape == (64, 64) and a["target_hook"] == "blocks.1.hook_mlp_out" and a["transcoder"] == 1
ok &= a["hook"] == "blocks.1.hook_resid_mid" and "W_skip" not in h5py.File("runs/transcoder/sae/sae.h5")
sys.exit(0 if ok else 1)
P

# SAELens' transcoder classes load the exports (a short training on the same store: relu with the
# skip -> SkipTranscoder, jumprelu -> JumpReLUTranscoder), as SAELens' own save_model writes them,
# and their forward matches sae.h5 (tests/python/check_saelens_transcoders.py).
cat > exports.toml <<T
[run]
name = "exports"
seed = 31
device = "cpu"
[train]
activations = "runs/transcoder/activations"
hook = "blocks.1.hook_resid_mid"
target_hook = "blocks.1.hook_mlp_out"
architecture = "relu"
skip = true
l1_coef = 0.3
d_sae = 96
batch_tokens = 1024
n_tokens = 200000
[[train.sweep]]
name = "jumprelu"
architecture = "jumprelu"
skip = false
T
if "$BIN/saepipe" run exports.toml --ranks 2 --only train >exports.log 2>&1; then
  VPY=$(bash "$SRC/scripts/python_env.sh") || fail "scripts/python_env.sh could not build the venv of real clients"
  "$VPY" "$SRC/tests/python/check_saelens_transcoders.py" runs/transcoder/activations runs/exports/sae \
    runs/exports/sae/sweep/jumprelu && pass "SAELens loads the skip and JumpReLU transcoder exports" || fail "SAELens transcoder exports"
else fail "exports: exit $?"; tail -5 exports.log; fi

hooks='["blocks.0.hook_resid_post", "blocks.1.hook_resid_post", "blocks.2.hook_resid_post"]'
job crosscoder "$hooks" \
  $'d_model = 32\nn_features = 64\nmean_active = 3.0\nhook_similarity = 0.6\nhook_absent = 0.25\nseed = 29' \
  "hooks = $hooks"$'\nd_sae = 128'
$PY - <<'P' && pass "crosscoder: every layer's directions with MMCS >= 0.98; per-layer FVU and decoder norms" || fail "crosscoder recovery"
import h5py, json, sys
c = json.load(open("runs/crosscoder/stats/summary.json"))
print(f"crosscoder: mmcs per layer {[round(m, 4) for m in c['mmcs_per_layer']]}  fvu per layer "
      f"{[round(v, 4) for v in c['fvu_per_layer']]}  fvu {c['fvu']:.4f}  l0 {c['l0']:.2f}  dead {c['dead_fraction']:.3f}")
f = h5py.File("runs/crosscoder/stats/features.h5")
norms = f["decoder_norm_per_layer"][...]
W = h5py.File("runs/crosscoder/sae/sae.h5")["W_dec"][...].reshape(128, 3, 32)
ok = len(c["mmcs_per_layer"]) == 3 and min(c["mmcs_per_layer"]) >= 0.98 and len(c["fvu_per_layer"]) == 3
ok &= norms.shape == (128, 3) and abs(norms - (W ** 2).sum(2) ** 0.5).max() < 1e-5
page = open("runs/crosscoder/interpret/features/0.html").read()
ok &= 'id="decoder_norm_per_layer"' in page
sys.exit(0 if ok else 1)
P

# Feature absorption (README: the measure; tests/python/absorption.py) on a hierarchical store
# whose children move with their parents (child_coefficient = "parent": 16 frequent parents, 3
# children each, a child with 90% of its parent's tokens) and k = 3 below the true L0 of 4: one
# latent reading parent + child saves a slot, so BatchTopK absorbs; Matryoshka's prefix losses
# keep the parents' latents (in its first prefixes) firing. Store seed 47 and run seed 53, not
# tuned on (tried on 101-103). Measured on fresh tokens of the generator, both at k = 3.
cat > absorb.toml <<T
[run]
name = "absorb"
seed = 53
device = "cpu"
[harvest]
source = "synthetic"
n_tokens = 294912
context = 128
shard_tokens = 65536
[harvest.synthetic]
d_model = 64
n_features = 64
mean_active = 4.0
children = 3
child_probability = 0.9
child_coefficient = "parent"
seed = 47
[train]
architecture = "batchtopk"
d_sae = 128
k = 3
n_tokens = 1500000
[[train.sweep]]
name = "matryoshka"
architecture = "matryoshka"
T
if "$BIN/saepipe" run absorb.toml --ranks 2 --only harvest,train >absorb.log 2>&1; then
  PYTHONPATH="$SRC/tests/python" $PY - <<'P' && pass "absorption: BatchTopK absorbs (>= 0.2), Matryoshka at least 0.15 less, L0 within 15%" || fail "absorption"
import h5py, json, sys
import numpy as np
import synthetic_reference as ref
from absorption import absorption, encode
gen = ref.Synthetic(json.load(open("runs/absorb/activations/manifest.json"))["source"], 1)
first, n = 294912 + 1000, 60000
x = gen.tokens(first, n)[0][0]
r = {}
for arch, path in (("batchtopk", "runs/absorb/sae/sae.h5"), ("matryoshka", "runs/absorb/sae/sweep/matryoshka/sae.h5")):
    with h5py.File(path) as f:
        W = {k: f[k][...].astype(np.float64) for k in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold")}
    ab, absorbed, measured, P = absorption(gen, W, arch, 3, first, n)
    l0 = float((encode(W, arch, 3, x) > 0).sum(1).mean())
    r[arch] = (ab, l0)
    print(f"{arch}: absorption {ab:.3f} (absorbed {absorbed:.2f} of {measured}/{P} parents)  l0 {l0:.2f}")
(b, lb), (m, lm) = r["batchtopk"], r["matryoshka"]
sys.exit(0 if b >= 0.2 and m <= b - 0.15 and abs(lm - lb) <= 0.15 * lb else 1)
P
else fail "absorb: exit $?"; tail -5 absorb.log; fi

# One-line user errors.
bad() {  # TRAIN-LINES PATTERN
  printf '[run]\nname = "bad"\n[harvest]\nhooks = ["a", "b"]\n[train]\n%s\n' "$1" > bad.toml
  expect_error 2 "$2" -- "$BIN/saepipe" validate bad.toml
}
bad 'skip = true' 'train.skip: a skip connection needs a transcoder'
bad $'target_hook = "c"' 'train.target_hook: "c" is not among harvest.hooks'
bad $'hooks = ["a"]' 'train.hooks: a crosscoder reads two or more hooks'
bad $'hooks = ["a", "b"]\nhook = "a"' "train.hooks: a crosscoder's hooks replace train.hook"
finish
