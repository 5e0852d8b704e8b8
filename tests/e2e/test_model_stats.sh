#!/usr/bin/env bash
# Stats with a model (tiny random GPT-2): CE loss recovered against a float64 PyTorch splice of
# the same SAE, identical figures for 1 and 3 ranks, logit effects present and checked by
# `saepipe inspect`; a transcoder spliced in place of an MLP against transformers; an
# unreadable model is one clear line, exit 2.
source "$(dirname "$0")/lib.sh" "$1"
$PY "$SRC/tests/python/make_tiny_gpt2.py" tiny --layers 2 --d 64 --heads 4 --vocab 512 --positions 64 --tokens 20000 >mk.log 2>&1 || { fail "make tiny model"; cat mk.log; finish; }
cat > m.toml <<T
[run]
name = "ms"
dir = "run"
[harvest]
source = "model"
model = "$WORK/tiny"
tokens = "$WORK/tiny/tokens.bin"
hooks = ["blocks.0.hook_resid_post"]
n_tokens = 8192
context = 32
shard_tokens = 2048
[train]
d_sae = 128
k = 8
batch_tokens = 256
n_tokens = 16384
auxk = 16
dead_tokens = 2000
[stats]
ce_loss_tokens = 600
logit_tokens = 5
T
"$BIN/saepipe" run m.toml --only harvest,train,stats >run.log 2>&1 || { fail "harvest/train/stats"; tail -5 run.log; finish; }
$PY "$SRC/tests/python/check_ce_loss.py" tiny run >ce.log 2>&1 && pass "$(cat ce.log)" || { fail "CE loss vs reference"; cat ce.log; }
sed 's|dir = "run"|dir = "run3"|' m.toml | sed "s|^\[stats\]|[stats]\nactivations = \"$WORK/run/activations\"\nsae = \"$WORK/run/sae/sae.h5\"|" > m3.toml
mpirun_np 3 "$BIN/saepipe-stats" --job m3.toml >s3.log 2>&1 || { fail "stats on 3 ranks"; tail -5 s3.log; }
$PY - <<'P' && pass "CE figures and logit effects identical for 1 and 3 ranks" || fail "model stats depend on the rank count"
import h5py, json, numpy as np, sys
a, b = json.load(open("run/stats/summary.json")), json.load(open("run3/stats/summary.json"))
keys = ["ce_loss_clean", "ce_loss_spliced", "ce_loss_zero", "ce_loss_recovered", "kl_div", "ce_tokens", "kl_positions"]
fa, fb = h5py.File("run/stats/features.h5"), h5py.File("run3/stats/features.h5")
ok = all(a[k] == b[k] for k in keys) and fa["logit_top_ids"].shape == (128, 5)
ok = ok and all(np.array_equal(fa[n][...], fb[n][...]) for n in ("logit_top_ids", "logit_top_values", "logit_hist_counts"))
sys.exit(0 if ok else 1)
P
# Latent shards (1 x 2): CE splicing with the shards' summed reconstruction and logit effects per
# latent range equal the unsharded run's (an SAE of 512 latents on the same store).
sed 's|dir = "run"|dir = "ls1"|; s|^d_sae = 128|d_sae = 512|' m.toml | sed "s|^\[train\]|[train]\nactivations = \"$WORK/run/activations\"|" > ls1.toml
sed 's|dir = "ls1"|dir = "ls2"|' ls1.toml | sed "s|^\[stats\]|[resources.stats]\nlatent_shards = 2\n[stats]\nactivations = \"$WORK/run/activations\"\nsae = \"$WORK/ls1/sae/sae.h5\"|" > ls2.toml
"$BIN/saepipe" run ls1.toml --only train,stats >ls1.log 2>&1 || { fail "train/stats d_sae 512"; tail -5 ls1.log; }
mpirun_np 2 "$BIN/saepipe-stats" --job ls2.toml >ls2.log 2>&1 || { fail "stats on a 1 x 2 grid"; tail -5 ls2.log; }
$PY - <<'P' && pass "1 x 2 latent shards: CE figures within 1e-6 and logit effects identical to unsharded" || fail "sharded model stats differ"
import h5py, json, numpy as np, sys
a, b = json.load(open("ls1/stats/summary.json")), json.load(open("ls2/stats/summary.json"))
ok = True
for k in ["ce_loss_clean", "ce_loss_spliced", "ce_loss_zero", "ce_loss_recovered", "kl_div", "ce_tokens", "kl_positions"]:
    print(k, a[k], b[k])
    ok &= abs(a[k] - b[k]) <= 1e-6 * max(abs(a[k]), 1e-12)
fa, fb = h5py.File("ls1/stats/features.h5"), h5py.File("ls2/stats/features.h5")
ok &= fa["logit_top_ids"].shape == (512, 5)
for n in ("logit_top_ids", "logit_bottom_ids", "logit_hist_counts", "logit_top_values", "logit_hist_lo"):
    ok &= bool(np.array_equal(fa[n][...], fb[n][...]))
sys.exit(0 if ok else 1)
P
"$BIN/saepipe" inspect run/stats >inspect.log 2>&1 && grep -q "5 logit tokens" inspect.log && grep -q ce_loss_recovered inspect.log \
  && pass "inspect shows logit effects and CE loss" || { fail "inspect"; cat inspect.log; }
# A transcoder spliced in place of block 1's MLP (blocks.1.hook_resid_mid -> hook_mlp_out), plain
# and with W_skip, against transformers' GPT-2 (the venv of scripts/python_env.sh) with the MLP's
# output replaced by a forward hook (tests/python/check_transcoder_ce.py), on 2 ranks; one whose
# input is another block's cannot stand in for an MLP: stats says so and skips CE loss.
VPY=$(bash "$SRC/scripts/python_env.sh") || fail "scripts/python_env.sh could not build the venv of real clients"
sed 's|dir = "run"|dir = "tc"|; s|^hooks = .*|hooks = ["blocks.0.hook_resid_mid", "blocks.1.hook_resid_mid", "blocks.1.hook_mlp_out"]|' m.toml \
  | sed 's|^\[train\]|[train]\nhook = "blocks.1.hook_resid_mid"\ntarget_hook = "blocks.1.hook_mlp_out"|' > tc.toml
printf '[[train.sweep]]\nname = "skip"\nskip = true\n' >> tc.toml
if "$BIN/saepipe" run tc.toml --ranks 2 --only harvest,train,stats >tc.log 2>&1; then
  sed "s|dir = \"tc\"|dir = \"tcs\"|" tc.toml | sed "s|^\[stats\]|[stats]\nactivations = \"$WORK/tc/activations\"\nsae = \"$WORK/tc/sae/sweep/skip/sae.h5\"|" > tcs.toml
  "$BIN/saepipe" run tcs.toml --ranks 2 --only stats >tcs.log 2>&1 || { fail "stats of the skip transcoder"; tail -5 tcs.log; }
  grep -q "CE loss recovered on up to 600 held-out tokens.*in place of the MLP: blocks.1.hook_mlp_out from blocks.1.hook_resid_mid" tc.log \
    && pass "stats logs the transcoder spliced in place of the MLP" || fail "no splice line in tc.log"
  for r in tc:tc/sae/sae.h5 tcs:tc/sae/sweep/skip/sae.h5; do
    "$VPY" "$SRC/tests/python/check_transcoder_ce.py" tiny "${r%%:*}" "${r#*:}" tc/activations/activations.h5 >"${r%%:*}_ce.log" 2>&1 \
      && pass "$(tail -1 "${r%%:*}_ce.log")" || { fail "transcoder CE loss vs transformers (${r%%:*})"; cat "${r%%:*}_ce.log"; }
  done
else fail "transcoder harvest/train/stats"; tail -5 tc.log; fi
sed 's|dir = "tc"|dir = "tcx"|; s|^hook = .*|hook = "blocks.0.hook_resid_mid"|' tc.toml | grep -v '^\[\[train.sweep\]\]\|^name = "skip"\|^skip = true' \
  | sed 's|^n_tokens = 16384|n_tokens = 2048|' | sed "s|^\[train\]|[train]\nactivations = \"$WORK/tc/activations\"|" > tcx.toml
if "$BIN/saepipe" run tcx.toml --only train,stats >tcx.log 2>&1; then
  grep -q "CE loss skipped: the transcoder reads blocks.0.hook_resid_mid and writes blocks.1.hook_mlp_out; it is spliced in place of an MLP" tcx.log \
    && ! grep -q ce_loss_spliced tcx/stats/summary.json && pass "a transcoder across blocks: CE loss skipped with the reason" \
    || { fail "cross-block transcoder"; grep -i "ce loss" tcx.log; }
else fail "cross-block transcoder: exit $?"; tail -5 tcx.log; fi

# An unreadable model: one line naming it, exit 2, on every rank.
mkdir -p broken && echo '{"model_type": "gpt2"' > broken/config.json
sed "s|model = \"$WORK/tiny\"|model = \"$WORK/broken\"|; s|dir = \"run\"|dir = \"runb\"|" m.toml | sed "s|^\[stats\]|[stats]\nactivations = \"$WORK/run/activations\"\nsae = \"$WORK/run/sae/sae.h5\"|" > b.toml
expect_error 2 "broken/config.json: not valid JSON" -- mpirun_np 2 "$BIN/saepipe-stats" --job b.toml
finish
