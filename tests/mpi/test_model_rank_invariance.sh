#!/usr/bin/env bash
# A model harvest writes the same store with 1, 2 and 4 ranks, and after kill -9 midway and a
# re-run (with another rank count): completed shards are kept, the rest written, and every
# dataset equals the uninterrupted run's bit for bit.
source "$(dirname "$(dirname "$0")")/e2e/lib.sh" "$1"
export OMP_NUM_THREADS=1   # ranks share the 2 cores; OpenMP barriers suffer badly from oversubscription
$PY "$SRC/tests/python/make_tiny_gpt2.py" model --layers 3 --d 256 --heads 8 --vocab 1024 --positions 128 --tokens 40000 \
  || fail "make model"
job() {  # job NAME RUN_DIR
  cat > "$1.toml" <<T
[run]
name = "minv"
dir = "$2"
[harvest]
source = "model"
model = "model"
tokens = "model/tokens.npy"
hooks = ["blocks.1.hook_resid_post", "blocks.2.hook_mlp_out"]
n_tokens = 32768
context = 128
shard_tokens = 512
dtype = "bfloat16"
batch_sequences = 2
exclude_bos = true
T
}
job r1 run1; job r2 run2; job r4 run4; job k runk
start=$SECONDS
mpirun_np 1 "$BIN/saepipe-harvest" --job r1.toml >r1.log 2>&1 || fail "harvest 1 rank"
echo "1 rank: $((SECONDS - start)) s"; tail -1 r1.log
mpirun_np 4 "$BIN/saepipe-harvest" --job r4.toml >r4.log 2>&1 || fail "harvest 4 ranks"

# Kill -9 midway (a singleton process, so its pid is ours to kill), then re-run with 2 ranks.
"$BIN/saepipe-harvest" --job k.toml >k1.log 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  n=$(ls runk/activations/shard-*.h5 2>/dev/null | wc -l)
  [ "$n" -ge 12 ] && break
  sleep 0.05
done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
n=$(ls runk/activations/shard-*.h5 2>/dev/null | wc -l)
if [ "$n" -ge 1 ] && [ "$n" -lt 64 ] && [ ! -e runk/activations/manifest.json ]; then pass "killed after $n of 64 shards"; else fail "kill midway ($n shards)"; fi
mpirun_np 2 "$BIN/saepipe-harvest" --job k.toml >k2.log 2>&1 || fail "re-run after kill"
tail -1 k2.log
grep -qE "done: $((64 - n)) shard\(s\) written, $n kept" k2.log && pass "re-run kept the $n complete shards" || fail "re-run counts: $(tail -1 k2.log)"
if [ -n "$(find runk -name '*.tmp*')" ]; then fail "temporary files left behind"; else pass "no temporary files left"; fi

$PY - <<'P' && pass "stores of 1, 4 ranks and killed + re-run on 2 ranks are identical" || fail "stores differ"
import h5py, numpy as np, sys
names = ["activations/blocks.1.hook_resid_post", "activations/blocks.2.hook_mlp_out", "tokens", "sequence", "position"]
ref = h5py.File("run1/activations/activations.h5", "r")
ok = ref[names[0]].shape == (32768 // 128 * 127, 256)
for d in ("run4", "runk"):
    f = h5py.File(f"{d}/activations/activations.h5", "r")
    for n in names:
        same = np.array_equal(ref[n][...], f[n][...])
        ok &= same
        if not same: print(d, n, "differs")
sys.exit(0 if ok else 1)
P
finish
