#!/usr/bin/env bash
# The reliability battery's malformed inputs: job files, stores, checkpoints and stats, each
# run under 4 ranks. Every case must end with exit 2 and one line naming the file and what
# is wrong (each pattern holds both), with no hang (each run is bounded by a timeout).
source "$(dirname "$0")/lib.sh" "$1"
job() {  # job NAME EXTRA-TOML: a valid small job plus EXTRA
  { printf '[run]\nname = "m"\ndir = "run_%s"\n' "$1"; printf '%b\n' "$2"; } > "$1.toml"
}
base='[harvest]\nn_tokens = 8192\ncontext = 64\nshard_tokens = 2048\n[harvest.synthetic]\nd_model = 16\nn_features = 32\nmean_active = 2.0\n[train]\nd_sae = 32\nk = 2\nn_tokens = 8192\nbatch_tokens = 512'
job good "$base"
mpirun_np 2 "$BIN/saepipe-harvest" --job good.toml >/dev/null 2>&1 && mpirun_np 2 "$BIN/saepipe-train" --job good.toml >/dev/null 2>&1 \
  && mpirun_np 2 "$BIN/saepipe-stats" --job good.toml >/dev/null 2>&1 || { fail "could not build the fixtures"; finish; }
STORE=run_good/activations SAE=run_good/sae/sae.h5 STATS=run_good/stats
n=0
case_job() {  # case_job PATTERN STAGE TOML-TEXT
  n=$((n + 1)); printf '%b\n' "$3" > "case$n.toml"
  expect_error 2 "$1" -- mpirun_np 4 "$BIN/saepipe-$2" --job "case$n.toml"
}
R='[run]\nname = "m"\n'

# --- job files
case_job "case1.toml:1: run: required key is missing" train ""
case_job "case2.toml:3: TOML syntax error" train "${R}[train\nk = 2"
case_job "case3.toml:3: trainn: unknown key" train "${R}[trainn]\nk = 2"
case_job "case4.toml:4: train.kk: unknown key" train "${R}[train]\nkk = 2"
case_job "case5.toml:4: train.k: expected an integer, got string" train "${R}[train]\nk = \"2\""
case_job "case6.toml:4: train.d_sae: expected an integer, got float" train "${R}[train]\nd_sae = 32.5"
case_job "case7.toml:4: train.lr: must be > 0" train "${R}[train]\nlr = -1e-3"
case_job "case8.toml:4: train.heldout_fraction: must be < 1" train "${R}[train]\nheldout_fraction = 1.5"
case_job "case9.toml:4: harvest.dtype: \"int8\" is not one of" harvest "${R}[harvest]\ndtype = \"int8\""
case_job "case10.toml:2: run.name: \"a/b\" does not match" harvest '[run]\nname = "a/b"'
case_job "case11.toml:4: train.k: must be <= train.d_sae" train "${R}[train]\nk = 64\nd_sae = 32"
case_job "case12.toml:4: harvest.shard_tokens: must be a multiple of harvest.context" harvest "${R}[harvest]\nshard_tokens = 1000\ncontext = 64\nn_tokens = 6400"
case_job "case13.toml:4: harvest.hooks: hook \"a\" is listed twice" harvest "${R}[harvest]\nhooks = [\"a\", \"a\"]"
case_job "case14.toml:4: harvest.hooks: needs at least 1 item" harvest "${R}[harvest]\nhooks = []"
case_job "case15.toml:4: harvest.hooks\[0\]: expected a string" harvest "${R}[harvest]\nhooks = [3]"
case_job "case16.toml:4: resources.train.ranks: must be >= 1" train "${R}[resources.train]\nranks = 0"
case_job "case17.toml:3: resources.evaluate: unknown key" train "${R}[resources.evaluate]\nranks = 2"
case_job "case18.toml:3: run.device: \"tpu\" is not one of" train '[run]\nname = "m"\ndevice = "tpu"'
case_job "case19.toml:4: harvest.synthetic.mean_active: must be > 0" harvest "${R}[harvest.synthetic]\nmean_active = 0"
case_job "case20.toml:3: run.seed: must be >= 0" train '[run]\nname = "m"\nseed = -4'
head -c 300 /dev/urandom > garbage.toml
expect_error 2 "garbage.toml:1: TOML syntax error" -- mpirun_np 4 "$BIN/saepipe-train" --job garbage.toml
mkdir -p adir.toml
expect_error 2 "adir.toml: is a directory" -- mpirun_np 4 "$BIN/saepipe-train" --job adir.toml
expect_error 2 "nosuch.toml: job file not found" -- mpirun_np 4 "$BIN/saepipe-train" --job nosuch.toml

# --- activation stores (train reads them)
store_case() {  # store_case PATTERN MUTATION-PYTHON [HOOK]
  n=$((n + 1)); rm -rf "s$n"; cp -r "$STORE" "s$n"
  (cd "s$n" && $PY -c "import json, h5py, os, numpy as np
m = json.load(open('manifest.json'))
$2") || fail "fixture $n"
  local hook=""; [ -n "${3:-}" ] && hook="\nhook = \"$3\""
  printf "${R}[train]\nactivations = \"s$n\"\nd_sae = 32\nk = 2\nn_tokens = 4096\nbatch_tokens = 512$hook\n" > "case$n.toml"
  expect_error 2 "$1" -- mpirun_np 4 "$BIN/saepipe-train" --job "case$n.toml"
}
store_case "manifest.json: no activation store here" "os.remove('manifest.json')"
store_case "manifest.json: not valid JSON" "open('manifest.json', 'w').write('{not json')"
store_case "manifest.json: schema: is 'other', expected 'saepipe.activations'" "m['schema'] = 'other'; json.dump(m, open('manifest.json', 'w'))"
store_case "manifest.json: version: 99 is not supported" "m['version'] = 99; json.dump(m, open('manifest.json', 'w'))"
store_case "manifest.json: d_model: missing" "del m['d_model']; json.dump(m, open('manifest.json', 'w'))"
store_case "manifest.json: shards: cover 8192 tokens but n_tokens is 99999" "m['n_tokens'] = 99999; json.dump(m, open('manifest.json', 'w'))"
store_case "shard-00001.h5: shard missing" "os.remove('shard-00001.h5')"
store_case "shard-00002.h5: not an HDF5 file" "open('shard-00002.h5', 'wb').write(os.urandom(4096))"
store_case "shard-00000.h5: /activations/blocks.0.hook_resid_post: shape \\[2048, 16\\] disagrees with" "m['d_model'] = 32; json.dump(m, open('manifest.json', 'w'))"
store_case "manifest.json: no hook 'blocks.7.hook_resid_post' in this store" "pass" "blocks.7.hook_resid_post"
store_case "manifest.json: hooks: must be a non-empty array" "m['hooks'] = 'x'; json.dump(m, open('manifest.json', 'w'))"

# --- SAE checkpoints (stats reads them)
sae_case() {  # sae_case PATTERN MUTATION-PYTHON
  n=$((n + 1)); mkdir -p "c$n"; cp "$SAE" "c$n/sae.h5"
  (cd "c$n" && $PY -c "import h5py, os, numpy as np
$2") || fail "fixture $n"
  printf "${R}dir = \"run_c$n\"\n[stats]\nactivations = \"$STORE\"\nsae = \"c$n/sae.h5\"\n" > "case$n.toml"
  expect_error 2 "$1" -- mpirun_np 4 "$BIN/saepipe-stats" --job "case$n.toml"
}
sae_case "c$((n + 1))/sae.h5: not an HDF5 file" "open('sae.h5', 'wb').write(os.urandom(2048))"
sae_case "sae.h5: /W_dec: no such dataset" "f = h5py.File('sae.h5', 'r+'); del f['W_dec']"
sae_case "c$((n + 1))/sae.h5: attribute 'schema' is 'something.else', expected 'saepipe.sae'" "f = h5py.File('sae.h5', 'r+'); f.attrs['schema'] = 'something.else'"
sae_case "sae.h5: /W_dec: shape" "f = h5py.File('sae.h5', 'r+'); del f['W_enc']; f['W_enc'] = np.zeros((8, 32), 'f4'); f.attrs['d_in'] = 8"
sae_case "c$((n + 1))/sae.h5: a directory, but not a SAELens SAE" "os.remove('sae.h5'); os.mkdir('sae.h5')"

# --- stats directories (interpret reads them)
stats_case() {  # stats_case PATTERN MUTATION-SHELL
  n=$((n + 1)); rm -rf "t$n"; cp -r "$STATS" "t$n"; (cd "t$n" && eval "$2")
  printf "${R}dir = \"run_t$n\"\n[interpret]\nstats = \"t$n\"\n" > "case$n.toml"
  expect_error 2 "$1" -- mpirun_np 4 "$BIN/saepipe-interpret" --job "case$n.toml"
}
stats_case "summary.json: stats not found" "rm summary.json"
stats_case "summary.json: not valid JSON" "echo '{' > summary.json"
stats_case "features.h5: no such file" "rm features.h5"
stats_case "features.h5: not an HDF5 file" "head -c 1000 /dev/urandom > features.h5"
# --- model directories and token files (harvest, source = "model")
$PY "$SRC/tests/python/make_tiny_gpt2.py" gpt --layers 1 --d 32 --heads 2 --vocab 128 --positions 64 --tokens 2048 >/dev/null \
  || fail "tiny GPT-2 fixture"
model_case() {  # model_case PATTERN SETUP-SHELL [TOKENS] [EXTRA-TOML]
  n=$((n + 1)); rm -rf "g$n"; cp -r gpt "g$n"; (cd "g$n" && eval "$2")
  printf "${R}dir = \"run_g$n\"\n[harvest]\nsource = \"model\"\nmodel = \"g$n\"\ntokens = \"${3:-g$n/tokens.npy}\"\nhooks = [\"${HOOK:-blocks.0.hook_resid_post}\"]\nn_tokens = 512\ncontext = 32\nshard_tokens = 256\n${4:-}\n" > "case$n.toml"
  expect_error 2 "$1" -- mpirun_np 4 "$BIN/saepipe-harvest" --job "case$n.toml"
}
model_case "g$((n + 1)): no config.json" "rm config.json"
model_case "config.json: not valid JSON" "echo '{broken' > config.json"
model_case "model.safetensors: tensor .* lie beyond the data section" "head -c 5000 model.safetensors > t && mv t model.safetensors"
model_case "model.safetensors: bad safetensors header length" "head -c 64 /dev/urandom > model.safetensors"
model_case "model.safetensors: tensor wte.weight has shape \\[128, 32\\], the config implies \\[128, 48\\]" "$PY -c \"import json; c = json.load(open('config.json')); c['n_embd'] = 48; json.dump(c, open('config.json', 'w'))\""
HOOK=blocks.9.hook_resid_post model_case "harvest.hooks: \"blocks.9.hook_resid_post\": layer 9 does not exist" "true"
model_case "tokens.bin: llm.c token file shorter than its 1024-byte header" "head -c 1000 /dev/urandom > tokens.bin" "g$((n + 1))/tokens.bin" 'token_format = "llmc"'
model_case "tokens.npy: not a NumPy .npy file" "printf 'not numpy at all' > tokens.npy"
model_case "tokens_raw.bin: token 60000 at index 0 is outside the model's vocabulary" "$PY -c \"import numpy as np; np.full(2048, 60000, np.uint16).tofile('tokens_raw.bin')\"" "g$((n + 1))/tokens_raw.bin" 'token_format = "uint16"'
model_case "harvest.tokens: token file \"g$((n + 1))/no_such_tokens.npy\" does not exist" "true" "g$((n + 1))/no_such_tokens.npy"

# --- a second run into an output directory another run holds: its rank 0 keeps a flock on
# <dir>/.saepipe.lock while the stage runs; this shell takes the same kind of lock on fd 9
for d in "run_good/activations:harvest" "run_good/sae:train" "run_good/stats:stats" "run_good:interpret"; do
  exec 9>"${d%%:*}/.saepipe.lock" && flock -n 9 || fail "flock(1) on ${d%%:*}"
  expect_error 2 "${d%%:*} is being written by another run of ${d#*:}" -- mpirun_np 2 "$BIN/saepipe-${d#*:}" --job good.toml
  exec 9>&-
  rm -f "${d%%:*}/.saepipe.lock"
done
mpirun_np 2 "$BIN/saepipe-harvest" --job good.toml >relock.log 2>&1 && grep -q "complete; nothing to do" relock.log \
  && pass "the lock released, the same run goes on" || fail "re-run after the lock: $(tail -3 relock.log)"
left=$(find . -name .saepipe.lock)
[ -z "$left" ] && pass "no lock file left by stages that ended (normally or with an error)" || fail "lock files left: $left"

echo "$n malformed-input cases run"
finish
