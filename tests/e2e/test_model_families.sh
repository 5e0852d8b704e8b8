#!/usr/bin/env bash
# Every model family against Hugging Face transformers itself: tiny random models built with
# save_pretrained (tests/python/hf_families.py, cached), every hook, the logits and the spliced
# CE/KL sums and the direct logit effects of decoder rows (final norm, soft-capping and
# unembedding) of saepipe (tests/tools/model_probe.cpp) within 1e-5 relative of transformers'
# forward pass; 1 and 2 ranks write identical stores for each family; text and JSONL through a
# tokenizer.json with prepend_bos = "auto" against AutoTokenizer and the model; bad inputs exit 2 with
# one line. Needs the PyPI venv (scripts/python_env.sh): a failed install fails the test.
source "$(dirname "$0")/lib.sh" "$1"
export OMP_NUM_THREADS=1
VPY=$(bash "$SRC/scripts/python_env.sh") || { fail "python venv (scripts/python_env.sh)"; finish; }
FIX=$("$VPY" "$SRC/tests/python/hf_families.py" build 2>build.log | tail -1)
[ -f "$FIX/.complete" ] || { fail "building the transformers fixtures"; tail -20 build.log; finish; }
MODELS=$(cat "$FIX/models.txt")

# Parity: every hook, the logits, spliced losses.
for m in $MODELS; do
  mkdir -p "probe/$m"
  "$BIN/tests/saepipe_model_probe" "$FIX/$m/model" "$FIX/$m/tokens.i32" 2 24 "probe/$m" "$(cat "$FIX/$m/edit_hook.txt")" "$FIX/$m/w_dec.f32" \
    > "probe/$m.log" 2>&1 || { fail "model_probe $m"; cat "probe/$m.log"; }
done
"$VPY" "$SRC/tests/python/hf_families.py" check "$FIX" probe > check.log 2>&1 && { cat check.log; pass "parity with transformers for $(echo $MODELS | wc -w) models"; } \
  || { cat check.log; fail "parity with transformers"; }

# 1 and 2 ranks write identical stores, for each family.
$PY - <<'P'
import numpy as np
np.save("tokens.npy", np.random.default_rng(3).integers(0, 96, 4000).astype("<i4"))
P
job() {  # job FILE RUN_DIR MODEL HOOKS [extra harvest lines...]
  local f=$1 dir=$2 model=$3 hooks=$4; shift 4
  { printf '[run]\nname = "f"\ndir = "%s"\n[harvest]\nsource = "model"\nmodel = "%s"\ntokens = "tokens.npy"\nhooks = %s\n' "$dir" "$model" "$hooks"
    printf 'n_tokens = 512\ncontext = 16\nshard_tokens = 128\nbatch_sequences = 4\n'
    for l in "$@"; do echo "$l"; done; } > "$f"
}
for m in $MODELS; do
  bos="prepend_bos = true"; case $m in qwen*) bos="prepend_bos = false";; esac   # Qwen has no BOS token
  hooks='["blocks.0.hook_attn_out", "blocks.1.hook_resid_post"]'
  job "r1_$m.toml" "r1_$m" "$FIX/$m/model" "$hooks" "$bos"
  job "r2_$m.toml" "r2_$m" "$FIX/$m/model" "$hooks" "$bos"
  "$BIN/saepipe-harvest" --job "r1_$m.toml" > "r1_$m.log" 2>&1 || { fail "harvest $m on 1 rank"; tail -3 "r1_$m.log"; }
  mpirun_np 2 "$BIN/saepipe-harvest" --job "r2_$m.toml" > "r2_$m.log" 2>&1 || { fail "harvest $m on 2 ranks"; tail -3 "r2_$m.log"; }
done
$PY - $MODELS <<'P' && pass "1 and 2 ranks write identical stores for every family" || fail "stores depend on the rank count"
import h5py, numpy as np, sys
ok = True
for m in sys.argv[1:]:
    a, b = h5py.File(f"r1_{m}/activations/activations.h5", "r"), h5py.File(f"r2_{m}/activations/activations.h5", "r")
    same = all(np.array_equal(a[k][...], b[k][...]) for k in
               ("tokens", "sequence", "position", "activations/blocks.0.hook_attn_out", "activations/blocks.1.hook_resid_post"))
    same = same and np.isfinite(a["activations/blocks.1.hook_resid_post"][...]).all() and a["tokens"].shape == (512,)
    if not same: print("differs:", m); ok = False
sys.exit(0 if ok else 1)
P

# Text and JSONL through the model's tokenizer.json with prepend_bos = "auto" (its template's
# <s>), on 2 ranks: tokens and activations against AutoTokenizer + AutoModelForCausalLM.
"$VPY" "$SRC/tests/python/hf_text_harvest.py" prepare "$FIX/llama/model" th > th.log 2>&1 || { fail "text fixture"; cat th.log; }
for fmt in txt jsonl; do
  job "t_$fmt.toml" "t_$fmt" "$WORK/th/model" '["blocks.0.hook_resid_post"]' 'prepend_bos = "auto"'
  sed -i "s|^tokens = .*|tokens = \"th/corpus.$fmt\"|; s|^n_tokens = 512|n_tokens = 1024|" "t_$fmt.toml"
  mpirun_np 2 "$BIN/saepipe-harvest" --job "t_$fmt.toml" > "t_$fmt.log" 2>&1 || { fail "text harvest $fmt"; tail -3 "t_$fmt.log"; }
  grep -q "prepend_bos = true" "t_$fmt/job.resolved.toml" && grep -q 'harvest.prepend_bos = "auto": true' "t_$fmt.log" \
    && pass "prepend_bos = \"auto\" resolved to true and logged ($fmt)" || fail "prepend_bos auto not resolved ($fmt)"
  "$VPY" "$SRC/tests/python/hf_text_harvest.py" check th/model "t_$fmt/activations" "$([ $fmt = txt ] && echo text || echo jsonl)" "th/corpus.$fmt" \
    > "tc_$fmt.log" 2>&1 && pass "$(tr '\n' ' ' < "tc_$fmt.log")" || { fail "text harvest $fmt vs transformers"; cat "tc_$fmt.log"; }
done

# Bad inputs: exit 2, one line naming the item.
job e.toml run_e "$FIX/gpt_neox/model" '["blocks.0.hook_resid_mid"]'
expect_error 2 'hook "blocks.0.hook_resid_mid" does not exist for gpt_neox (parallel' -- mpirun_np 2 "$BIN/saepipe-harvest" --job e.toml
job e.toml run_e "$FIX/llama/model" '["hook_pos_embed"]'
expect_error 2 'hook "hook_pos_embed" does not exist for llama' -- "$BIN/saepipe-harvest" --job e.toml
job e.toml run_e "$FIX/qwen2/model" '["blocks.0.hook_resid_post"]'
expect_error 2 "harvest.prepend_bos: the model has no BOS token" -- "$BIN/saepipe-harvest" --job e.toml
variant() {  # variant NAME FROM PYTHON-EDIT-OF-c (config.json as dict c)
  rm -rf "$1"; cp -r "$FIX/$2/model" "$1"
  $PY -c "import json,sys; c=json.load(open('$1/config.json')); $3; json.dump(c, open('$1/config.json','w'))"
  job e.toml run_e "$WORK/$1" '["blocks.1.hook_resid_post"]'
}
variant v_rope llama 'c["rope_parameters"]["rope_type"] = "yarn"'
expect_error 2 'rope type "yarn" is not supported (supported: default, linear, llama3)' -- "$BIN/saepipe-harvest" --job e.toml
variant v_headdim llama 'c["head_dim"] = 8'
expect_error 2 'tensor model.layers.0.self_attn.q_proj.weight has shape \[64, 48\], the config implies \[32, 48\]' -- "$BIN/saepipe-harvest" --job e.toml
variant v_field qwen3 'del c["num_attention_heads"]'
expect_error 2 'config.json: lacks "num_attention_heads"' -- "$BIN/saepipe-harvest" --job e.toml
variant v_bias llama 'c["mlp_bias"] = True'
expect_error 2 'checkpoint lacks tensor model.layers.0.mlp.gate_proj.bias' -- "$BIN/saepipe-harvest" --job e.toml
variant v_layer gemma2 'c["layer_types"][1] = "chunked_attention"'
expect_error 2 'layer_types\[1\] "chunked_attention" is not supported' -- "$BIN/saepipe-harvest" --job e.toml
variant v_window mistral 'c["sliding_window"] = 0'
expect_error 2 '"sliding_window" must be a positive integer' -- "$BIN/saepipe-harvest" --job e.toml
broken() {  # broken NAME PYTHON-EDIT-OF-h (the safetensors header of a copy of qwen3)
  rm -rf "$1"; cp -r "$FIX/qwen3/model" "$1"
  $PY - "$1/model.safetensors" "$2" <<'P'
import json, struct, sys
p = sys.argv[1]; b = open(p, "rb").read()
n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); data = b[8 + n:]
exec(sys.argv[2])
hb = json.dumps(h).encode(); open(p, "wb").write(struct.pack("<Q", len(hb)) + hb + data)
P
  job e.toml run_e "$WORK/$1" '["blocks.1.hook_resid_post"]'
}
broken v_missing 'del h["model.layers.1.mlp.down_proj.weight"]'
expect_error 2 'checkpoint lacks tensor model.layers.1.mlp.down_proj.weight' -- "$BIN/saepipe-harvest" --job e.toml
broken v_dtype 'h["model.norm.weight"]["dtype"] = "I16"'
expect_error 2 'tensor model.norm.weight: unsupported dtype I16' -- "$BIN/saepipe-harvest" --job e.toml
finish
