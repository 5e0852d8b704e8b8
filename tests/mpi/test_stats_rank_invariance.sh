#!/usr/bin/env bash
# The stats stage's merged results (features.h5, examples.h5, summary.json) are identical for
# 1, 3 and 4 ranks (3 and 4 get uneven numbers of batches; 3 encode twice, 1 reads the first
# pass's codes back, and of the 4 the two ranks with 3 batches pass the scratch cap and encode
# again while the two with 2 read back: collectives must not depend on it), match an independent
# float64 NumPy
# recomputation (tests/python/check_stats_reference.py), and pass `saepipe inspect`.
source "$(dirname "$(dirname "$0")")/e2e/lib.sh" "$1"
cat > base.toml <<T
[run]
name = "sinv"
dir = "run"
[harvest]
n_tokens = 65536
context = 64
shard_tokens = 16384
[harvest.synthetic]
d_model = 32
n_features = 96
mean_active = 4.0
[train]
d_sae = 128
k = 6
batch_tokens = 2048
n_tokens = 400000
lr = 0.003
auxk = 32
dead_tokens = 20000
checkpoint_every = 0
[stats]
batch_tokens = 640
T
"$BIN/saepipe" run base.toml --only harvest,train >prep.log 2>&1 || { fail "harvest/train"; cat prep.log; finish; }
for n in 1 3 4; do
  mkdir -p r$n
  sed "s|dir = \"run\"|dir = \"r$n\"|" base.toml | sed "s|^\[stats\]|[stats]\nactivations = \"$WORK/run/activations\"\nsae = \"$WORK/run/sae/sae.h5\"|" > s$n.toml
  # 3 ranks encode twice instead of reading the first pass's codes back: the same results.
  [ $n = 3 ] && echo "scratch_codes = false" >> s$n.toml
  # 10 held-out batches of 640 tokens, 33304 bytes of codes each: a cap of 80000 bytes holds 2.
  [ $n = 4 ] && echo "scratch_codes_gib = $(/usr/bin/python3 -c 'print(80000 / 2**30)')" >> s$n.toml
  mpirun_np $n "$BIN/saepipe-stats" --job s$n.toml >stats$n.log 2>&1 || { fail "stats on $n ranks"; cat stats$n.log; }
done
ls r4/stats/.codes.* >/dev/null 2>&1 && fail "scratch files left behind" || pass "no scratch files left"
dropped=$(grep -c "its codes would pass stats.scratch_codes_gib (80.0 kB); the second pass encodes again" stats4.log)
[ "$dropped" = 2 ] && pass "4 ranks: two dropped their scratch file, two kept it" || { fail "4 ranks: $dropped ranks dropped the scratch file (want 2)"; cat stats4.log; }
$PY - <<'P' && pass "features.h5, examples.h5 and summary.json identical for 1, 3 and 4 ranks" || fail "stats depend on the rank count"
import h5py, json, numpy as np, sys
ok = True
for fn in ("features.h5", "examples.h5"):
    ref = h5py.File(f"r1/stats/{fn}")
    names = []
    ref.visit(lambda n: names.append(n) if isinstance(ref[n], h5py.Dataset) else None)
    assert len(names) >= 8, names
    for n in (3, 4):
        other = h5py.File(f"r{n}/stats/{fn}")
        for name in names:
            if not np.array_equal(ref[name][...], other[name][...]):
                print(f"{fn}:{name} differs for {n} ranks"); ok = False
s1 = json.load(open("r1/stats/summary.json"))
for n in (3, 4):
    s = json.load(open(f"r{n}/stats/summary.json"))
    for k, v in s1.items():
        if k not in ("resolved_job", "fingerprint") and s.get(k) != v:
            print(f"summary {k}: {v} vs {s.get(k)} for {n} ranks"); ok = False
sys.exit(0 if ok else 1)
P
mkdir -p ref && ln -s "$WORK/run/activations" ref/activations && ln -s "$WORK/run/sae" ref/sae && ln -s "$WORK/r1/stats" ref/stats
$PY "$SRC/tests/python/check_stats_reference.py" ref >ref.log 2>&1 && pass "stats match the float64 reference ($(grep "top examples" ref.log))" || { fail "stats vs reference"; cat ref.log; }
"$BIN/saepipe" inspect r4/stats >inspect.log 2>&1 && grep -q "examples: top 20" inspect.log && pass "saepipe inspect validates the stats outputs" || { fail "inspect"; cat inspect.log; }
finish
