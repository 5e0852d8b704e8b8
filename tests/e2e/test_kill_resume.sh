#!/usr/bin/env bash
# kill -9 of one rank during harvest, train and stats, then the same command again: the
# outputs equal those of an uninterrupted run (train: bit-identical weights, same ranks).
source "$(dirname "$0")/lib.sh" "$1"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1   # same BLAS rounding in every run compared
job() {  # job NAME
  cat > "$1.toml" <<T
[run]
name = "kill"
dir = "$1"
seed = 5
[harvest]
n_tokens = 393216
context = 64
shard_tokens = 4096
[harvest.synthetic]
d_model = 32
n_features = 64
mean_active = 3.0
[train]
d_sae = 256
k = 4
n_tokens = 1228800
batch_tokens = 2048
lr = 0.002
checkpoint_every = 40
log_every = 10
heldout_fraction = 0.5
[stats]
batch_tokens = 16
T
}
# kill_one STAGE JOB READY-COMMAND: start 2 ranks, wait until READY-COMMAND succeeds, kill -9
# one rank, wait for mpirun to end.
kill_one() {
  mpirun_np 2 "$BIN/saepipe-$1" --job "$2.toml" >"$2-$1-killed.log" 2>&1 &
  local launcher=$! waited=0
  until eval "$3"; do
    sleep 0.05; waited=$((waited + 1))
    if ! kill -0 $launcher 2>/dev/null; then fail "$1 finished before it could be killed"; return; fi
    [ $waited -gt 2400 ] && { fail "$1 never became ready"; return; }
  done
  local victim; victim=$(pgrep -f "^[^ ]*saepipe-$1 --job $2.toml" | tail -1)  # a rank, not mpirun
  kill -9 "$victim" && pass "killed rank process $victim of $1 mid-run"
  wait $launcher; local rc=$?
  [ $rc -ne 0 ] && pass "$1 run ended with $rc after the kill" || fail "$1 exit 0 after a kill"
}
job a; job b
for s in harvest train stats interpret; do
  mpirun_np 2 "$BIN/saepipe-$s" --job a.toml >a-$s.log 2>&1 || fail "uninterrupted $s"
done

kill_one harvest b '[ "$(ls b/activations/shard-*.h5 2>/dev/null | wc -l)" -ge 8 ]'
mpirun_np 2 "$BIN/saepipe-harvest" --job b.toml >b-harvest.log 2>&1 || fail "harvest re-run"
kill_one train b '[ -s b/sae/train_state.h5 ] && [ "$(wc -l < b/sae/train_log.jsonl)" -ge 6 ]'
mpirun_np 2 "$BIN/saepipe-train" --job b.toml >b-train.log 2>&1 || fail "train re-run"
grep -q "resum" b-train.log && pass "train resumed from its checkpoint" || fail "train did not say it resumed: $(cat b-train.log)"
kill_one stats b 'grep -q "evaluating" b-stats-killed.log'
mpirun_np 2 "$BIN/saepipe-stats" --job b.toml >b-stats.log 2>&1 || fail "stats re-run"
mpirun_np 2 "$BIN/saepipe-interpret" --job b.toml >b-interpret.log 2>&1 || fail "interpret"

$PY - <<'P' && pass "outputs after kill + re-run equal the uninterrupted run's" || fail "outputs differ after kill + re-run"
import h5py, json, numpy as np, sys
ok = True
def same(path, keys):
    global ok
    with h5py.File("a/" + path) as fa, h5py.File("b/" + path) as fb:
        for k in keys:
            eq = np.array_equal(fa[k][...], fb[k][...])
            print(f"{path}:{k} {'identical' if eq else 'DIFFERS'}")
            ok &= eq
same("activations/activations.h5", ["activations/blocks.0.hook_resid_post", "tokens", "sequence", "position"])
same("sae/sae.h5", ["W_enc", "b_enc", "W_dec", "b_dec"])
same("stats/features.h5", ["fire_count", "max_activation", "mean_activation"])
sa, sb = (json.load(open(p + "/stats/summary.json")) for p in "ab")
for k in ("fvu", "mse", "l0", "mmcs"):
    ok &= sa[k] == sb[k]
    print(k, sa[k], sb[k])
sys.exit(0 if ok else 1)
P
finish
