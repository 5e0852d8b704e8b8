#!/usr/bin/env bash
# Stop signals without SLURM (pipeline/core/interrupt.hpp). A signal to ONE rank stops every
# rank at the next safe point with exit 75 after saving what resumes the stage: harvest its
# shards, train train_state.h5 (Ctrl-C to `saepipe run` reaches the stage as SIGUSR1); running
# again gives the outputs of an uninterrupted run (train: bit-identical weights). Stats saves
# nothing and starts again. A second signal, or no time left (SAEPIPE_SIGNAL_GRACE), ends a
# stage at once, with nothing incomplete under a final name.
source "$(dirname "$0")/lib.sh" "$1"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1   # the same BLAS rounding in every run compared
job() {  # job NAME: the same job in directory NAME
  cat > "$1.toml" <<T
[run]
name = "sig"
dir = "$1"
seed = 3
[harvest]
n_tokens = 262144
context = 64
shard_tokens = 2048
[harvest.synthetic]
d_model = 32
n_features = 64
mean_active = 3.0
[train]
d_sae = 128
k = 4
n_tokens = 614400
batch_tokens = 1024
lr = 0.002
checkpoint_every = 100
log_every = 10
heldout_fraction = 0.25
[stats]
batch_tokens = 64
T
}
# wait_for WHAT COMMAND PID: until COMMAND succeeds while PID runs (at most 120 s).
wait_for() {
  local i
  for i in $(seq 2400); do
    eval "$2" && return 0
    kill -0 "$3" 2>/dev/null || { fail "$1: the run ended before it could be signalled"; return 1; }
    sleep 0.05
  done
  fail "$1: never happened"; return 1
}
# rank_pids PID: the ranks of `mpirun_np` PID (timeout -> mpirun -> ranks).
rank_pids() { local m; for m in $(pgrep -P "$1"); do pgrep -P "$m"; done; }

job a; job b
for s in harvest train stats; do mpirun_np 2 "$BIN/saepipe-$s" --job a.toml >a-$s.log 2>&1 || fail "uninterrupted $s"; done

# Harvest: SIGTERM to one rank; both stop after their round with the shards written so far.
mpirun_np 2 "$BIN/saepipe-harvest" --job b.toml >b-harvest1.log 2>&1 & L=$!
if wait_for harvest '[ "$(ls b/activations/shard-*.h5 2>/dev/null | wc -l)" -ge 8 ]' $L; then
  kill -TERM "$(rank_pids $L | tail -1)"
  wait $L; rc=$?
  [ $rc = 75 ] && pass "harvest: SIGTERM to one rank ends the stage with 75" || fail "harvest exit $rc: $(tail -3 b-harvest1.log)"
  grep -q "interrupted: stopped by SIGTERM at a safe point; kept [0-9]* of 128 shards" b-harvest1.log \
    && pass "harvest says what it kept" || fail "harvest message: $(tail -3 b-harvest1.log)"
  [ ! -e b/activations/manifest.json ] && pass "harvest: no manifest (the store is not complete)" || fail "manifest written"
fi
mpirun_np 2 "$BIN/saepipe-harvest" --job b.toml >b-harvest2.log 2>&1 || fail "harvest re-run"
grep -qE "[1-9][0-9]* kept from an earlier run" b-harvest2.log && pass "harvest re-run kept the shards" || fail "harvest kept nothing: $(tail -2 b-harvest2.log)"

# Train under `saepipe run`: Ctrl-C (SIGINT to the driver) reaches the ranks as SIGUSR1, and
# the stage after it (stats) does not start.
"$BIN/saepipe" run b.toml --only train,stats --ranks 2 >b-train1.log 2>&1 & L=$!
if wait_for train '[ "$(wc -l < b/sae/train_log.jsonl 2>/dev/null || echo 0)" -ge 8 ]' $L; then
  kill -INT $L
  wait $L; rc=$?
  [ $rc = 75 ] && pass "train: Ctrl-C to saepipe run ends the stage with 75" || fail "train exit $rc: $(tail -3 b-train1.log)"
  grep -q "interrupted: stopped by SIGUSR1 at a safe point; kept train_state.h5 at step" b-train1.log \
    && grep -q "run the same command again to resume" b-train1.log && pass "train and saepipe run say so" \
    || fail "train messages: $(tail -3 b-train1.log)"
  grep -q "later stages not run" b-train1.log && ! grep -q '"stage":"stats"' b/stages.jsonl && [ ! -e b/stats ] \
    && pass "saepipe run started no later stage" || fail "stats started after the Ctrl-C: $(tail -3 b-train1.log)"
fi
"$BIN/saepipe" run b.toml --only train --ranks 2 >b-train2.log 2>&1 || fail "train re-run"
grep -q "resuming b/sae at step" b-train2.log && pass "train resumed from its checkpoint" || fail "no resume: $(head -5 b-train2.log)"

# Stats: SIGUSR1 to one rank as soon as it catches the signal (SigCgt in /proc: its handlers are
# installed, before MPI starts); the passes stop at their first safe point; nothing kept, no
# scratch file left. (Waiting for the "evaluating" line raced: the passes over this store take
# ~0.1 s, and the signal could arrive after they were done.)
catches_usr1() { local m; m=$(awk '/^SigCgt:/ {print $2}' "/proc/$1/status" 2>/dev/null) && [ -n "$m" ] && (( 0x$m & 0x200 )); }
mpirun_np 2 "$BIN/saepipe-stats" --job b.toml >b-stats1.log 2>&1 & L=$!
if wait_for stats 'v=$(rank_pids $L | head -1); [ -n "$v" ] && catches_usr1 "$v"' $L; then
  kill -USR1 "$(rank_pids $L | head -1)"
  wait $L; rc=$?
  [ $rc = 75 ] && pass "stats: SIGUSR1 to one rank ends the stage with 75" || fail "stats exit $rc: $(tail -3 b-stats1.log)"
  [ -z "$(ls -A b/stats 2>/dev/null | grep -v job.resolved)" ] && pass "stats left nothing behind" || fail "stats left: $(ls -A b/stats)"
fi
mpirun_np 2 "$BIN/saepipe-stats" --job b.toml >b-stats2.log 2>&1 || fail "stats re-run"
grep -c '"event":"interrupted"' b/stages.jsonl | grep -qx 3 && pass "stages.jsonl records the three interruptions" \
  || fail "stages.jsonl: $(cat b/stages.jsonl)"

$PY - <<'P' && pass "outputs after the signals equal the uninterrupted run's" || fail "outputs differ after the signals"
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
sys.exit(0 if ok else 1)
P

# `saepipe run` asked to stop just as a stage ends (SAEPIPE_MPIRUN: a launcher that signals
# saepipe, then ends): by its own exit (0, it ignores the forwarded SIGUSR1) or by the
# forwarded SIGUSR1 itself (its ranks could not yet catch it). Either way no later stage starts
# and saepipe run exits 75.
job f
cat > stage-done <<'S'
#!/bin/bash
echo "$*" >> launched.txt; trap '' USR1; kill -INT $PPID; sleep 0.2; exit 0
S
cat > stage-killed <<'S'
#!/bin/bash
echo "$*" >> launched.txt; kill -INT $PPID; exec sleep 5
S
chmod +x stage-done stage-killed
for l in done killed; do
  rm -f launched.txt
  SAEPIPE_MPIRUN=$PWD/stage-$l "$BIN/saepipe" run f.toml --only harvest,train --ranks 2 >f-$l.log 2>&1; rc=$?
  [ $rc = 75 ] && [ "$(grep -c saepipe-harvest launched.txt)" = 1 ] && ! grep -q saepipe-train launched.txt \
    && pass "saepipe run, signalled as a stage ends ($l): exit 75, no later stage" \
    || fail "stage-$l: exit $rc, launched: $(cat launched.txt), log: $(tail -2 f-$l.log)"
done

# A second signal, and no time left: a model harvest whose one shard takes far longer than the
# test waits (no safe point is reached) ends at once.
$PY "$SRC/tests/python/make_tiny_gpt2.py" gpt --layers 4 --d 256 --heads 4 --vocab 512 --positions 128 --tokens 140000 >/dev/null || fail "make model"
cat > m.toml <<'T'
[run]
name = "m"
[harvest]
source = "model"
model = "gpt"
tokens = "gpt/tokens.bin"
hooks = ["blocks.3.hook_resid_post"]
n_tokens = 131072
context = 128
shard_tokens = 131072
T
ends_at_once() {  # ends_at_once WHAT LOG PATTERN: the stage ended with 75 at once, nothing complete
  local t0=$1 rc=$2 what=$3 log=$4 pattern=$5
  [ $rc = 75 ] && grep -q "$pattern" "$log" && pass "$what: exit 75, '$pattern'" || fail "$what: exit $rc: $(tail -3 "$log")"
  [ $(( $(date +%s) - t0 )) -le 3 ] && pass "$what: ended within 3 s" || fail "$what: took $(( $(date +%s) - t0 )) s"
  [ -z "$(ls runs/m/activations/shard-*.h5 runs/m/activations/manifest.json 2>/dev/null)" ] \
    && pass "$what: nothing under a final name" || fail "$what: left $(ls runs/m/activations)"
}
"$BIN/saepipe-harvest" --job m.toml >m1.log 2>&1 & L=$!
if wait_for "model harvest" 'grep -q "writing 131072 tokens" m1.log' $L; then
  kill -USR1 $L; sleep 2.5; t0=$(date +%s); kill -TERM $L
  wait $L; ends_at_once "$t0" $? "second signal" m1.log "a second signal: ending at once"
fi
SAEPIPE_SIGNAL_GRACE=2 "$BIN/saepipe-harvest" --job m.toml >m2.log 2>&1 & L=$!
if wait_for "model harvest" 'grep -q "writing 131072 tokens" m2.log' $L; then
  t0=$(date +%s); kill -USR1 $L
  wait $L; ends_at_once "$t0" $? "no time left" m2.log "no time left after the stop signal"
fi
finish
