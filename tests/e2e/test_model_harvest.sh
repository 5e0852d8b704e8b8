#!/usr/bin/env bash
# Harvest from a tiny random GPT-2 (tests/python/make_tiny_gpt2.py): golden parity with an
# independent PyTorch GPT-2 at every hook (<= 1e-5 relative, fp32); a sharded bf16 checkpoint
# with the "transformer." prefix; every token format; text and JSONL through the BPE tokenizer
# against a reference encoder; bf16 storage; train -> stats -> interpret on the model store
# over 2 ranks; bad inputs (exit 2, one line).
source "$(dirname "$0")/lib.sh" "$1"
export OMP_NUM_THREADS=1   # ranks share the 2 cores; OpenMP barriers suffer badly from oversubscription
MK="$PY $SRC/tests/python/make_tiny_gpt2.py"
$MK tiny --layers 2 --d 64 --heads 4 --vocab 512 --positions 64 --tokens 20000 --bpe || fail "make tiny model"
$MK tiny_bf16 --layers 2 --d 64 --heads 4 --vocab 512 --positions 64 --dtype BF16 --shards 3 --prefix transformer. --seed 5 || fail "make bf16 model"
ALL='["hook_embed", "hook_pos_embed", "blocks.0.hook_resid_pre", "blocks.0.hook_attn_out", "blocks.0.hook_resid_mid", "blocks.0.hook_mlp_out", "blocks.1.hook_resid_post", "ln_final.hook_normalized"]'
job() {  # job FILE RUN_DIR MODEL TOKENS HOOKS N_TOKENS [extra harvest lines...]
  local f=$1 dir=$2 model=$3 tokens=$4 hooks=$5 n=$6; shift 6
  { printf '[run]\nname = "m"\ndir = "%s"\n[harvest]\nsource = "model"\nmodel = "%s"\ntokens = "%s"\nhooks = %s\n' "$dir" "$model" "$tokens" "$hooks"
    printf 'n_tokens = %s\ncontext = 32\nshard_tokens = 512\n' "$n"
    for l in "$@"; do echo "$l"; done
    printf '[train]\nhook = "%s"\nd_sae = 128\nk = 8\nbatch_tokens = 256\nn_tokens = 8192\nauxk = 16\ndead_tokens = 2000\ninit_tokens = 1024\nshuffle_tokens = 2048\nlog_every = 8\n' "${THOOK:-}"
  } > "$f"
}
harvest() { mpirun_np "$1" "$BIN/saepipe-harvest" --job "$2" > "${2%.toml}.log" 2>&1 || { fail "harvest $2"; tail -5 "${2%.toml}.log"; }; }

# Golden parity at every hook, and the stored tokens against the llm.c file.
THOOK=blocks.1.hook_resid_post job p.toml run_p tiny tiny/tokens.bin "$ALL" 2048
harvest 1 p.toml
$PY "$SRC/tests/python/gpt2_reference.py" tiny run_p/activations --tokens tiny/tokens.bin && pass "parity with the PyTorch reference at 8 hooks" || fail "parity"
[ ! -e run_p/activations/ground_truth.h5 ] && pass "no ground truth for a model store" || fail "ground_truth.h5 in a model store"

# Sharded BF16 checkpoint, "transformer." prefix, without BOS, position 0 excluded.
$PY - <<'P'
import numpy as np; np.random.default_rng(9).integers(0, 511, 5000).astype("<u2").tofile("raw.bin")
P
job b.toml run_b tiny_bf16 raw.bin "$ALL" 1024 'prepend_bos = false' 'exclude_bos = true'
harvest 2 b.toml
$PY "$SRC/tests/python/gpt2_reference.py" tiny_bf16 run_b/activations --tokens raw.bin && pass "parity: sharded bf16 checkpoint, no BOS, position 0 excluded" || fail "parity bf16"

# Every token format gives the same tokens and activations.
for f in tokens.bin tokens_raw.bin tokens.npy tokens_u16.npy tokens.h5; do
  job "f_$f.toml" "run_f_$f" tiny "tiny/$f" '["blocks.1.hook_resid_post"]' 1024
  harvest 1 "f_$f.toml"
done
$PY - <<'P' && pass "llmc, raw uint16, npy int32/uint16 and hdf5 token files agree" || fail "token formats differ"
import h5py, numpy as np, sys
files = ["tokens.bin", "tokens_raw.bin", "tokens.npy", "tokens_u16.npy", "tokens.h5"]
st = [h5py.File(f"run_f_{f}/activations/activations.h5", "r") for f in files]
ok = all(np.array_equal(st[0]["tokens"][...], s["tokens"][...]) and
         np.array_equal(st[0]["activations/blocks.1.hook_resid_post"][...], s["activations/blocks.1.hook_resid_post"][...]) for s in st)
sys.exit(0 if ok else 1)
P

# The thread count does not change a bit of the store (fixed row blocks per BLAS call).
job th.toml run_th tiny tiny/tokens.bin '["blocks.1.hook_resid_post"]' 1024 'batch_sequences = 16'
job th3.toml run_th3 tiny tiny/tokens.bin '["blocks.1.hook_resid_post"]' 1024 'batch_sequences = 16'
harvest 1 th.toml
OMP_NUM_THREADS=3 "$BIN/saepipe-harvest" --job th3.toml > th3.log 2>&1 || fail "harvest with 3 threads"
$PY - <<'P' && pass "1 and 3 OpenMP threads write identical stores" || fail "store depends on the thread count"
import h5py, numpy as np, sys
h = "activations/blocks.1.hook_resid_post"
sys.exit(0 if np.array_equal(h5py.File("run_th/activations/activations.h5", "r")[h][...],
                             h5py.File("run_th3/activations/activations.h5", "r")[h][...]) else 1)
P

# Text and JSONL through the BPE tokenizer, against the reference encoder.
$PY - <<'P'
import json, random
random.seed(1)
parts = ["The quick brown fox", " jumps", "  over", "\tthe", " lazy dog.", "\n\n", "It's", " they'll", " we've", " I'D",
         " you're", " 123", " 3.14", " x²", " ½", " Ⅻ", " café", " naïve", " e\u0301", " 東京", " Ελληνικά", " 🙂🙂", "!!",
         " --", "\u00a0nbsp", "\u3000ideo", " \u2028", "   ", "\r\n", " 'quoted'", " don't", "'s", "ABC'sDEF", " ...",
         "\x0b", "\x1c", " 2026", "<|endoftext|>"]
open("corpus.txt", "w", encoding="utf-8", newline="").write("".join(random.choice(parts) for _ in range(3000)))
with open("corpus.jsonl", "w", encoding="utf-8") as f:
    for i in range(300):
        f.write(json.dumps({"id": i, "text": "".join(random.choice(parts) for _ in range(10))}) + "\n")
P
job t.toml run_t tiny corpus.txt '["blocks.0.hook_resid_post"]' 8192
job j.toml run_j tiny corpus.jsonl '["blocks.0.hook_resid_post"]' 8192
harvest 1 t.toml; harvest 1 j.toml
$PY "$SRC/tests/python/bpe_reference.py" tiny run_t/activations text corpus.txt && pass "text tokens equal the reference BPE" || fail "text tokens"
$PY "$SRC/tests/python/bpe_reference.py" tiny run_j/activations jsonl corpus.jsonl && pass "JSONL tokens equal the reference BPE" || fail "JSONL tokens"

# bfloat16 / float16 storage read back by h5py within the format's rounding.
job s16.toml run_s16 tiny tiny/tokens.bin '["blocks.1.hook_resid_post"]' 1024 'dtype = "bfloat16"'
job h16.toml run_h16 tiny tiny/tokens.bin '["blocks.1.hook_resid_post"]' 1024 'dtype = "float16"'
harvest 1 s16.toml; harvest 1 h16.toml
$PY - <<'P' && pass "bf16 and f16 stores match fp32 within rounding" || fail "16-bit stores"
import h5py, numpy as np, sys
h = "activations/blocks.1.hook_resid_post"
a = h5py.File("run_f_tokens.bin/activations/activations.h5", "r")[h][...]
ok = True
for d, eps in (("run_s16", 2**-8), ("run_h16", 2**-11)):
    b = h5py.File(f"{d}/activations/activations.h5", "r")[h][...].astype(np.float32)
    ok &= bool(np.all(np.abs(a - b) <= eps * np.abs(a) + 1e-6))
sys.exit(0 if ok else 1)
P

# The other stages run unchanged on the model store, over 2 ranks.
ok=1
for st in train stats interpret; do
  mpirun_np 2 "$BIN/saepipe-$st" --job p.toml > "$st.log" 2>&1 || { ok=0; fail "$st on the model store"; tail -5 "$st.log"; }
done
[ $ok = 1 ] && $PY -c "import json,math,sys; s=json.load(open('run_p/stats/summary.json')); print('fvu', s['fvu'], 'l0', s['l0']); sys.exit(0 if math.isfinite(s['fvu']) and s['fvu'] < 1 else 1)" \
  && [ -s run_p/interpret/index.html ] && pass "train -> stats -> interpret on the model store (2 ranks)" || fail "stages on the model store"

# Bad inputs: exit 2 and one line naming the item.
job e.toml run_e tiny tiny/tokens.bin '["blocks.0.hook_nope"]' 1024
expect_error 2 'unknown hook "blocks.0.hook_nope"' -- mpirun_np 2 "$BIN/saepipe-harvest" --job e.toml
job e.toml run_e tiny tiny/tokens.bin '["blocks.7.hook_resid_post"]' 1024
expect_error 2 "layer 7 does not exist" -- mpirun_np 2 "$BIN/saepipe-harvest" --job e.toml
job e.toml run_e tiny tiny/tokens.bin '["blocks.0.hook_resid_post"]' 1024
sed -i 's/^context = 32/context = 128/; s/^shard_tokens = 512/shard_tokens = 1024/' e.toml
expect_error 2 "harvest.context: 128 exceeds the model's n_positions 64" -- mpirun_np 2 "$BIN/saepipe-harvest" --job e.toml
job e.toml run_e tiny tiny/tokens.bin '["blocks.0.hook_resid_post"]' 65536
expect_error 2 "tiny/tokens.bin: holds 20000 tokens" -- mpirun_np 2 "$BIN/saepipe-harvest" --job e.toml
$PY - <<'P'
import numpy as np
ids = np.zeros(3000, "<u2"); ids[1500] = 600          # beyond vocab_size 512; sequence 48, shard 3, rank 1
h = np.zeros(256, "<i4"); h[:3] = [20240520, 1, 3000]
open("badtok.bin", "wb").write(h.tobytes() + ids.tobytes())
P
job e.toml run_e tiny badtok.bin '["blocks.0.hook_resid_post"]' 2048
expect_error 2 "badtok.bin: token 600 at index 1500 is outside the model's vocabulary" -- mpirun_np 2 "$BIN/saepipe-harvest" --job e.toml
# Broken checkpoints: truncated, header offsets beyond the file, unknown dtype, missing
# tensor, shape not matching the config.
broken() {  # broken NAME PYTHON-EDIT: a copy of tiny/ whose model.safetensors (bytes b, header h) is edited
  rm -rf "$1"; cp -r tiny "$1"
  $PY - "$1" "$2" <<'P'
import json, struct, sys
d, edit = sys.argv[1], sys.argv[2]
b = open(f"{d}/model.safetensors", "rb").read()
n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); data = b[8 + n:]
exec(edit)
hb = json.dumps(h).encode()
open(f"{d}/model.safetensors", "wb").write(struct.pack("<Q", len(hb)) + hb + data) if "TRUNC" not in edit else open(f"{d}/model.safetensors", "wb").write(b[:len(b) // 2])
P
  job e.toml run_e "$1" tiny/tokens.bin '["blocks.1.hook_resid_post"]' 1024
}
broken m_trunc "TRUNC = 1"
expect_error 2 "m_trunc/model.safetensors: tensor .* lie beyond the data section" -- mpirun_np 2 "$BIN/saepipe-harvest" --job e.toml
broken m_off 'h["h.1.ln_2.bias"]["data_offsets"] = [len(data) - 4, len(data) + 252]'
expect_error 2 "tensor h.1.ln_2.bias: data_offsets .* beyond the data section" -- mpirun_np 2 "$BIN/saepipe-harvest" --job e.toml
broken m_dtype 'h["wpe.weight"]["dtype"] = "I7"'
expect_error 2 "tensor wpe.weight: unsupported dtype I7" -- mpirun_np 2 "$BIN/saepipe-harvest" --job e.toml
broken m_missing 'del h["h.1.mlp.c_fc.bias"]'
expect_error 2 "checkpoint lacks tensor h.1.mlp.c_fc.bias" -- mpirun_np 2 "$BIN/saepipe-harvest" --job e.toml
rm -rf m_shape; cp -r tiny m_shape
$PY -c "import json; c=json.load(open('m_shape/config.json')); c['n_inner']=128; json.dump(c, open('m_shape/config.json','w'))"
job e.toml run_e m_shape tiny/tokens.bin '["blocks.1.hook_resid_post"]' 1024
expect_error 2 "tensor h.0.mlp.c_fc.weight has shape \[64, 256\], the config implies \[64, 128\]" -- mpirun_np 2 "$BIN/saepipe-harvest" --job e.toml
job e.toml run_e tiny tiny/tokens.bin '["blocks.1.hook_resid_post"]' 1024
sed -i 's/^source = "model"/source = "model"\ntoken_format = "npy"/' e.toml
expect_error 2 "tiny/tokens.bin: not a NumPy .npy file" -- mpirun_np 2 "$BIN/saepipe-harvest" --job e.toml
finish
