#!/usr/bin/env bash
# tokenizer.json reading (pipeline/model/hf_tokenizer) against the `tokenizers` package itself:
# byte-level BPE (Llama 3, Qwen 2, GPT-NeoX styles) and SentencePiece-style BPE (Llama 2's
# Prepend/Replace, Metaspace) built here with tokenizers, encode and decode over tricky text
# (unicode, whitespace runs, digits, emoji, byte fallback, special and added tokens); bad files
# exit 2 with one line; the BOS a model's tokenizer files prepend (prepend_bos = "auto") against
# transformers' AutoTokenizer. Needs the PyPI venv (scripts/python_env.sh): a failed install fails.
source "$(dirname "$0")/lib.sh" "$1"
VPY=$(bash "$SRC/scripts/python_env.sh") || { fail "python venv (scripts/python_env.sh)"; finish; }
KINDS=$("$VPY" "$SRC/tests/python/hf_tokenizers.py" build tok 2>build.log | tail -1)
[ -n "$KINDS" ] || { fail "building tokenizer.json files"; tail -20 build.log; finish; }
for k in $KINDS; do
  "$BIN/tests/saepipe_tokenizer_probe" "tok/$k/tokenizer.json" "tok/$k/cases.json" "tok/$k/out.json" > "$k.log" 2>&1 \
    && "$VPY" "$SRC/tests/python/hf_tokenizers.py" check tok "$k" "tok/$k/out.json" >> "$k.log" 2>&1 \
    && pass "$(tail -1 "$k.log")" || { fail "tokenizer $k"; cat "$k.log"; }
done
# harvest.prepend_bos = "auto": the BOS the model's tokenizer files say, against transformers'
# AutoTokenizer on the layouts the families ship; contradicting files and none at all: exit 2.
CASES=$("$VPY" "$SRC/tests/python/hf_tokenizer_bos.py" build bos 2>bos.log | tail -1)
[ -n "$CASES" ] || { fail "building tokenizer directories"; tail -20 bos.log; }
for c in $CASES; do
  case $c in
    contradict_*) expect_error 2 "add_bos_token = .* but .*set harvest.prepend_bos = true or false" -- "$BIN/tests/saepipe_tokenizer_probe" --bos "bos/$c" b.json;;
    no_files) expect_error 2 "needs the model's tokenizer files" -- "$BIN/tests/saepipe_tokenizer_probe" --bos "bos/$c" b.json;;
    *) "$BIN/tests/saepipe_tokenizer_probe" --bos "bos/$c" "bos/$c.out" > "bos_$c.log" 2>&1 \
         && "$VPY" "$SRC/tests/python/hf_tokenizer_bos.py" check bos "$c" "bos/$c.out" >> "bos_$c.log" 2>&1 \
         && pass "BOS $(tail -1 "bos_$c.log")" || { fail "BOS $c"; cat "bos_$c.log"; };;
  esac
done
bad() {  # bad NAME PYTHON-EDIT-OF-j (a copy of the llama3 tokenizer.json)
  mkdir -p "$1"; $PY -c "import json; j=json.load(open('tok/llama3/tokenizer.json')); $2; json.dump(j, open('$1/tokenizer.json','w'))"
}
bad b_pre 'j["pre_tokenizer"] = {"type": "BertPreTokenizer"}'
expect_error 2 'pre_tokenizer "BertPreTokenizer" is not supported' -- "$BIN/tests/saepipe_tokenizer_probe" b_pre/tokenizer.json tok/llama3/cases.json b.json
bad b_model 'j["model"]["type"] = "Unigram"'
expect_error 2 'model type "Unigram" is not supported (BPE)' -- "$BIN/tests/saepipe_tokenizer_probe" b_model/tokenizer.json tok/llama3/cases.json b.json
bad b_merge 'j["model"]["merges"].append(["zzzq", "qqq"])'
expect_error 2 'names a token the vocabulary lacks' -- "$BIN/tests/saepipe_tokenizer_probe" b_merge/tokenizer.json tok/llama3/cases.json b.json
bad b_regex 'j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed"'
expect_error 2 'does not compile' -- "$BIN/tests/saepipe_tokenizer_probe" b_regex/tokenizer.json tok/llama3/cases.json b.json
finish
