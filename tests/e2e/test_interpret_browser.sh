#!/usr/bin/env bash
# The interpret site in a real browser: Debian's chromium-headless-shell loads the pages from
# disk, runs their scripts and dumps the DOM; tests/python/check_interpret_site.py compares what
# is shown with features.h5, examples.h5 and summary.json read through h5py (rows drawn by the
# script, the order after a scripted sort, pages, the search and the dead filter, the summary;
# a feature page's statistics, quantiles, histogram, neighbour links, navigation, and every
# context's text, highlighted tokens, intensities and example mark). The Neuronpedia batches
# are validated against schemas/neuronpedia_batch.schema.json (and a broken one must fail).
# Two runs: a smaller copy of the quickstart (synthetic: token ids, ground truth; interpret
# over 2 ranks) and a tiny GPT-2 whose text holds markup, quotes, newlines and multi-byte
# characters (tokens decoded with its vocab.json, escaped, split characters made valid).
# Exit 77 (skipped) without the browser.
source "$(dirname "$0")/lib.sh" "$1"
export OMP_NUM_THREADS=1
CHROME=${SAEPIPE_CHROMIUM:-$(command -v chromium-headless-shell || command -v chromium || true)}
if [ -z "$CHROME" ] || ! "$CHROME" --version >/dev/null 2>&1; then
  echo "skipped: chromium-headless-shell is not installed (scripts/setup.sh installs it)"; exit 77
fi
echo "browser: $("$CHROME" --version 2>/dev/null)"
CHECK="$PY $SRC/tests/python/check_interpret_site.py"

# dump_site RUN_DIR DUMP_DIR: every page the checker plans, as the DOM after scripts ran.
dump_site() {
  mkdir -p "$2"
  $CHECK plan "$1" > "$2/plan.txt" || { fail "plan for $1"; return; }
  while read -r name page; do
    timeout 60 "$CHROME" --no-sandbox --headless --disable-gpu --virtual-time-budget=5000 \
      --dump-dom "file://$PWD/$1/interpret/$page" > "$2/$name.html" 2> "$2/$name.err"
    [ -s "$2/$name.html" ] || fail "no DOM for $page: $(tail -2 "$2/$name.err")"
  done < "$2/plan.txt"
  pass "dumped $(wc -l < "$2/plan.txt") pages of $1"
}

# --- 1. the quickstart, smaller (a quarter of the tokens), every stage over 2 ranks
sed -e 's/^name = "quickstart"/name = "browser"\ndir = "qs"/' -e 's/^n_tokens = 524288/n_tokens = 262144/' \
    -e 's/^n_tokens = 2097152/n_tokens = 786432/' "$SRC/jobs/quickstart.toml" > qs.toml
printf 'neuronpedia_batch_size = 100\n' >> qs.toml   # the file ends in [interpret]
if "$BIN/saepipe" run qs.toml --ranks 2 > qs.log 2>&1; then pass "quickstart copy ran (2 ranks)"; else fail "quickstart copy: $(tail -5 qs.log)"; fi
grep "interpret" qs.log | tail -2
n=$(ls qs/interpret/features | wc -l)
[ "$n" = 512 ] && pass "512 feature pages" || fail "$n feature pages (want 512)"
[ "$(ls qs/interpret/neuronpedia/batch-*.json | wc -l)" = 6 ] && [ "$(ls qs/interpret/neuronpedia/feature-extras-*.json | wc -l)" = 6 ] \
  && pass "6 Neuronpedia batches of 100, each with its feature-extras sidecar" || fail "batches: $(ls qs/interpret/neuronpedia)"
[ -z "$(find qs -name '*.tmp*' -o -name '*.old.*')" ] && pass "no temporary site left" || fail "temporary files: $(find qs -name '*.tmp*')"
echo "site size: $(du -sh qs/interpret | cut -f1) (pages $(du -sh qs/interpret/features | cut -f1), export $(du -sh qs/interpret/neuronpedia | cut -f1))"
dump_site qs dom_qs
$CHECK check qs dom_qs && pass "quickstart site shows what the stats files hold" || fail "quickstart site checks"

$PY "$SRC/tests/python/check_json_schema.py" "$SRC/schemas/neuronpedia_batch.schema.json" qs/interpret/neuronpedia/batch-*.json \
  && pass "Neuronpedia batches match their schema" || fail "Neuronpedia batches vs schema"
$PY "$SRC/tests/python/check_json_schema.py" "$SRC/schemas/neuronpedia_extras.schema.json" qs/interpret/neuronpedia/feature-extras-*.json \
  && pass "feature-extras sidecars match their schema" || fail "feature-extras vs schema"
rm -f broken.json
$PY - <<'P' || fail "could not make the broken batch"
import json
b = json.load(open("qs/interpret/neuronpedia/batch-0.json"))
del b["features"][0]["frac_nonzero"]; b["features"][1]["surprise"] = 1
json.dump(b, open("broken.json", "w"))
P
# The checker must reject it for the missing key (exit 1), not crash (exit 2 from Python, or a
# missing fixture).
$PY "$SRC/tests/python/check_json_schema.py" "$SRC/schemas/neuronpedia_batch.schema.json" broken.json > broken.txt 2>&1
rc=$?
[ -s broken.json ] && [ $rc = 1 ] && grep -q "frac_nonzero" broken.txt && grep -q "^0 of 1 files valid" broken.txt \
  && pass "the schema check rejects a broken batch, naming frac_nonzero" || fail "broken batch: exit $rc, $(head -c 300 broken.txt)"

# Re-running interpret replaces the site as a whole; neuronpedia = false leaves no export.
sed -i -e '/^neuronpedia_batch_size = 100$/d' -e 's/^max_features = 0$/max_features = 20\nneuronpedia = false/' qs.toml
mpirun_np 2 "$BIN/saepipe-interpret" --job qs.toml > qs-rerun.log 2>&1 || fail "interpret re-run: $(tail -3 qs-rerun.log)"
[ "$(ls qs/interpret/features | wc -l)" = 20 ] && [ ! -e qs/interpret/neuronpedia ] \
  && pass "re-run with max_features = 20, neuronpedia = false: 20 pages, no export" || fail "re-run did not replace the site"
# grep exits 1 for "no match" and 2 when the page is missing: only 1 passes.
grep -q 'href="18.html"' qs/interpret/features/19.html || fail "page 19 has no link to page 18 (the check below would be vacuous)"
grep -q 'href="20.html"' qs/interpret/features/19.html
case $? in 1) pass "no link past the last page" ;; 0) fail "page 19 links to the missing page 20" ;; *) fail "page 19 missing" ;; esac

# --- 2. a tiny GPT-2 on text with markup and multi-byte characters
$PY "$SRC/tests/python/make_tiny_gpt2.py" gpt --layers 1 --d 32 --heads 2 --vocab 512 --positions 64 --bpe >/dev/null || fail "tiny GPT-2"
$PY - <<'P'
lines = ['<script>alert("x")</script> & <b>bold</b> \'single\' "double" café naïve 東京 € 🙂 tabs\tnewline',
         "Sparse autoencoders find features in the residual stream; x < y && y > z.",
         "Ünïcödé Ελληνικά <!-- comment --> </td></tr> ' OR 1=1; -- 2026 3.14"]
text = "\n".join(lines[i % 3] + f" {i}" for i in range(400))
open("text.txt", "w", encoding="utf-8").write(text)
P
cat > model.toml <<T
[run]
name = "browser-model"
dir = "gm"
[harvest]
source = "model"
model = "gpt"
tokens = "text.txt"
token_format = "text"
hooks = ["blocks.0.hook_resid_post"]
n_tokens = 8192
context = 32
shard_tokens = 2048
[train]
d_sae = 64
k = 4
batch_tokens = 256
n_tokens = 16384
auxk = 16
dead_tokens = 4000
init_tokens = 1024
shuffle_tokens = 2048
[interpret]
neuronpedia_batch_size = 32
T
if "$BIN/saepipe" run model.toml > gm.log 2>&1; then pass "tiny GPT-2 pipeline ran"; else fail "tiny GPT-2 pipeline: $(tail -5 gm.log)"; fi
dump_site gm dom_gm
$CHECK check gm dom_gm && pass "model site: decoded, escaped tokens as the stats files hold them" || fail "model site checks"
$PY "$SRC/tests/python/check_json_schema.py" "$SRC/schemas/neuronpedia_batch.schema.json" gm/interpret/neuronpedia/batch-*.json \
  && pass "model Neuronpedia batches match their schema" || fail "model Neuronpedia batches vs schema"
# No markup from the text reaches a page as markup: the only scripts are the index's own.
$PY - <<'P' && pass "no <script>, <b> or comment from the text became markup" || fail "markup from the text leaked into a page"
import glob, re, sys
bad = []
# Something to look at: the dumped feature pages and the rendered ones, and the text does hold
# the markup (else the check is vacuous).
if not glob.glob("dom_gm/feature_*.html") or not glob.glob("gm/interpret/features/*.html") or "<script>" not in open("text.txt").read():
    sys.exit("nothing to check")
for p in glob.glob("dom_gm/feature_*.html"):
    t = open(p, encoding="utf-8").read()
    if re.search(r"<script|<b>|<!--", t):
        bad.append(p)
for p in glob.glob("gm/interpret/features/*.html"):
    t = open(p, encoding="utf-8").read()
    if re.search(r"<script|<b>|<!-- comment", t):
        bad.append(p)
print(bad[:3])
sys.exit(1 if bad else 0)
P

# --- 3. bad input: one line naming the file, exit 2
mkdir -p badstats && cp -r gm/stats/. badstats/
$PY -c "import h5py; f = h5py.File('badstats/examples.h5', 'r+'); f.attrs['d_sae'] = 65" || fail "mutate examples.h5"
printf '[run]\nname = "bad"\ndir = "bad"\n[interpret]\nstats = "badstats"\n' > bad.toml
expect_error 2 "badstats/examples.h5: /top/row: shape does not match \\[65, 20\\] (d_sae" -- mpirun_np 2 "$BIN/saepipe-interpret" --job bad.toml
[ ! -e bad/interpret ] && [ -z "$(find bad -name 'interpret.tmp*' 2>/dev/null)" ] && pass "no site after the error" || fail "a site was left after the error"
finish
