#!/usr/bin/env bash
# Stats with a model (tiny random GPT-2): CE loss recovered against a float64 PyTorch splice of
# the same SAE, identical figures for 1 and 3 ranks, logit effects present and checked by
# `saepipe inspect`; an unreadable model is one clear line, exit 2.
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
"$BIN/saepipe" inspect run/stats >inspect.log 2>&1 && grep -q "5 logit tokens" inspect.log && grep -q ce_loss_recovered inspect.log \
  && pass "inspect shows logit effects and CE loss" || { fail "inspect"; cat inspect.log; }
# An unreadable model: one line naming it, exit 2, on every rank.
mkdir -p broken && echo '{"model_type": "gpt2"' > broken/config.json
sed "s|model = \"$WORK/tiny\"|model = \"$WORK/broken\"|; s|dir = \"run\"|dir = \"runb\"|" m.toml | sed "s|^\[stats\]|[stats]\nactivations = \"$WORK/run/activations\"\nsae = \"$WORK/run/sae/sae.h5\"|" > b.toml
expect_error 2 "broken/config.json: not valid JSON" -- mpirun_np 2 "$BIN/saepipe-stats" --job b.toml
finish
