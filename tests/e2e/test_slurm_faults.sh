#!/usr/bin/env bash
# On a real SLURM (local, two nodes n1 and n2), time limits, signals and requeues cost minutes,
# never a run. The scenarios run at the same time (one of them waits for a 1-minute limit):
#   tl  train whose time limit (1 minute) is shorter than the run: SLURM's warning
#       (--signal=B:USR1@20), a checkpoint, the job requeues itself until the run is done;
#       weights bit-identical to an uninterrupted run.
#   b   scancel --signal=USR1 in the middle of train (ranks started by srun): requeued, resumed,
#       identical weights.
#   d1  scancel --signal=USR1 in the middle of harvest (srun); d2 the same under mpirun with
#       scancel --batch (the script passes it on): requeued, resumed, identical stores.
#   e   scontrol requeue of train under mpirun, with no periodic checkpoint: the ranks save on
#       SLURM's SIGTERM (within the second mpirun leaves them) and the run resumes from there;
#       identical weights.
#   c   harvest -> train -> stats over two nodes (each rank logs its node); train, the middle
#       stage, is requeued twice by scontrol requeue, as a node failure does: it resumes each
#       time, stats runs once and only after it; store and weights equal one-node runs.
# The references are computed with mpirun on this machine meanwhile.
source "$(dirname "$0")/lib.sh" "$1"
source "$LIB_DIR/slurm_lib.sh"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1   # the same BLAS rounding in every run compared

# mkjob NAME [TOML LINES...]: NAME.toml with run.dir NAME; the harvest every store uses.
mkjob() {
  local name=$1; shift
  { printf '[run]\nname = "%s"\ndir = "%s"\nseed = 5\n' "$name" "$name"
    printf '[harvest]\nn_tokens = 262144\ncontext = 64\nshard_tokens = 2048\n'
    printf '[harvest.synthetic]\nd_model = 32\nn_features = 64\nmean_active = 3.0\n'
    for l in "$@"; do printf '%s\n' "$l"; done
  } > "$name.toml"
}
# The long train (tl: one rank, ~55 s of one core unloaded) outlasts the time limit's warning,
# which slurmctld sends at its first look (every 30 s) with at most grace + 30 s left, i.e.
# 10-40 s into a 1-minute run with a grace of 20 s; the short train has two ranks.
TL='d_sae = 256\nk = 4\nn_tokens = 32768000\nbatch_tokens = 2048\nlr = 0.002\ncheckpoint_every = 2000\nlog_every = 200\nheldout_fraction = 0.25'
T2='d_sae = 256\nk = 4\nn_tokens = 2048000\nbatch_tokens = 2048\nlr = 0.002\ncheckpoint_every = 50\nlog_every = 10\nheldout_fraction = 0.25'
train() { printf "[train]\nactivations = \"%s\"\n$1\n" "$2"; }

mkjob ref "$(train "$TL" ref/activations)"
mkjob ref1 "$(train "$TL" ref/activations)"
mkjob ref2 "$(train "$T2" ref/activations)"
mkjob tl "$(train "$TL" ref/activations)" '[resources.train]' 'time = "1"' 'signal_grace = 20' 'max_requeues = 40'
mkjob b "$(train "$T2" ref/activations)" '[resources.train]' 'ranks = 2'
mkjob e "$(train "${T2/checkpoint_every = 50/checkpoint_every = 100000}" ref/activations)" '[resources.train]' 'ranks = 2' 'launcher = "mpirun"'
mkjob d1 '[resources.harvest]' 'ranks = 2'
mkjob d2 '[resources.harvest]' 'ranks = 2' 'launcher = "mpirun"'
mkjob c "$(train "$T2" c/activations)" '[stats]' 'batch_tokens = 512' \
  '[resources.harvest]' 'ranks = 2' 'nodes = 2' '[resources.train]' 'ranks = 2' 'nodes = 2' '[resources.stats]' 'ranks = 2' 'nodes = 2'

mpirun_np 2 "$BIN/saepipe-harvest" --job ref.toml >ref-harvest.log 2>&1 || { fail "reference harvest"; finish; }
submit() { "$BIN/saepipe" submit "$1.toml" --only "$2" >"submit-$1.log" 2>&1 || fail "submit $1: $(cat "submit-$1.log")"; }
submit tl train; submit b train; submit e train; submit d1 harvest; submit d2 harvest; submit c harvest,train,stats
TL_ID=$(job_of train submit-tl.log) B_ID=$(job_of train submit-b.log) D1_ID=$(job_of harvest submit-d1.log)
D2_ID=$(job_of harvest submit-d2.log) C_ID=$(job_of train submit-c.log) E_ID=$(job_of train submit-e.log)
# The references may take as long as the test (ctest's limit bounds them), not mpirun_np's 300 s:
# on a loaded machine the long one (16000 steps) takes minutes.
mpirun_long() { local n=$1; shift; timeout 840 mpirun -q -np "$n" --bind-to none --oversubscribe "$@"; }
(mpirun_long 1 "$BIN/saepipe-train" --job ref1.toml >ref1.log 2>&1 || echo "FAIL: reference train (1 rank)"
 mpirun_long 2 "$BIN/saepipe-train" --job ref2.toml >ref2.log 2>&1 || echo "FAIL: reference train (2 ranks)") >refs.out &
REFS=$!

# until_ok WHAT JOB COMMAND: until COMMAND succeeds while SLURM job JOB is queued or running.
until_ok() {
  local i
  for i in $(seq 3000); do
    eval "$3" && return 0
    [ -n "$(squeue -h -j "$2" 2>/dev/null)" ] || { echo "FAIL: $1: the job ended first"; return 1; }
    sleep 0.1
  done
  echo "FAIL: $1 never happened"; return 1
}
lines() { [ -f "$1" ] && wc -l < "$1" || echo 0; }
shards() { ls "$1"/activations/shard-*.h5 2>/dev/null | wc -l; }
{ until_ok "b's train running" "$B_ID" '[ "$(lines b/sae/train_log.jsonl)" -ge 5 ]' \
    && scancel --signal=USR1 "$B_ID" && echo "ok: scancel --signal=USR1 b's train at step ~$(( $(lines b/sae/train_log.jsonl) * 10 ))"
} >drive-b.out 2>&1 &
{ until_ok "e's train running" "$E_ID" '[ "$(lines e/sae/train_log.jsonl)" -ge 5 ]' \
    && scontrol requeue "$E_ID" && echo "ok: scontrol requeue e's train (mpirun) at step ~$(( $(lines e/sae/train_log.jsonl) * 10 ))"
} >drive-e.out 2>&1 &
{ until_ok "d1's harvest running" "$D1_ID" '[ "$(shards d1)" -ge 8 ]' && scancel --signal=USR1 "$D1_ID" \
    && echo "ok: scancel --signal=USR1 d1's harvest after $(shards d1) shards"
} >drive-d1.out 2>&1 &
{ until_ok "d2's harvest running" "$D2_ID" '[ "$(shards d2)" -ge 8 ]' && scancel --batch --signal=USR1 "$D2_ID" \
    && echo "ok: scancel --batch --signal=USR1 d2's harvest (mpirun) after $(shards d2) shards"
} >drive-d2.out 2>&1 &
{ until_ok "c's train checkpoint" "$C_ID" '[ -s c/sae/train_state.h5 ] && [ "$(lines c/sae/train_log.jsonl)" -ge 8 ]' \
    && n=$(lines c/sae/train_log.jsonl) && scontrol requeue "$C_ID" && echo "ok: scontrol requeue c's train at step ~$((n * 10))" \
    && until_ok "c's train resumed" "$C_ID" '[ "$(events c train start)" -ge 2 ] && [ "$(lines c/sae/train_log.jsonl)" -ge $((n + 5)) ]' \
    && scontrol requeue "$C_ID" && echo "ok: scontrol requeue c's train again at step ~$(( $(lines c/sae/train_log.jsonl) * 10 ))"
} >drive-c.out 2>&1 &
wait_idle 780   # under ctest's 900 s; the time-limit scenario took 600 s at load 30 on 2 cores (20 requeues)
wait
for f in drive-*.out refs.out; do cat "$f"; grep -q FAIL "$f" && FAILED=1; done

# tl: the time limit's warning, a checkpoint, requeues until done.
"$BIN/saepipe" status tl.toml >status-tl.log 2>&1; cat status-tl.log
out=$(cat tl/slurm/train-"$TL_ID".out)
n=$(events tl train interrupted)
[ "$n" -ge 1 ] && [ "$(grep '"event":"interrupted"' tl/stages.jsonl | grep -c SIGUSR1)" = "$n" ] \
  && pass "tl: stopped by the time limit's warning (SIGUSR1) $n time(s)" || fail "tl: interruptions: $(cat tl/stages.jsonl)"
grep -q "requeueing SLURM job $TL_ID" <<<"$out" && ! grep -q "DUE TO TIME LIMIT" <<<"$out" \
  && pass "tl: requeued itself before the limit, never killed by it" || fail "tl: $(grep -v '%' <<<"$out" | tail -20)"
grep -qE "^  train +complete +SLURM job $TL_ID COMPLETED; requeued ${n}x; resumed from step [0-9]+ of 16000" status-tl.log \
  && pass "tl: status shows the requeues and the steps resumed from" || fail "tl: status"
same_h5 ref1/sae/sae.h5 tl/sae/sae.h5 W_enc b_enc W_dec b_dec && pass "tl: weights bit-identical to the uninterrupted run"

# b: scancel --signal=USR1 in the middle of train.
"$BIN/saepipe" status b.toml >status-b.log 2>&1; cat status-b.log
grep -qE "^  train +complete +SLURM job $B_ID COMPLETED; requeued 1x; resumed from step [0-9]+ of 1000" status-b.log \
  && pass "b: train requeued once and resumed" || fail "b: $(cat b/slurm/train-*.out | grep -v '%' | tail)"
same_h5 ref2/sae/sae.h5 b/sae/sae.h5 W_enc b_enc W_dec b_dec && pass "b: weights bit-identical to the uninterrupted run"

# e: scontrol requeue under mpirun, no periodic checkpoint.
"$BIN/saepipe" status e.toml >status-e.log 2>&1; cat status-e.log
grep -qE "^  train +complete +SLURM job $E_ID COMPLETED; requeued 1x; resumed from step [1-9][0-9]* of 1000" status-e.log \
  && grep -q '"message":"stopped by SIGTERM at a safe point' e/stages.jsonl \
  && pass "e: saved on SLURM's SIGTERM under mpirun, requeued, resumed" || fail "e: $(cat e/stages.jsonl)"
same_h5 ref2/sae/sae.h5 e/sae/sae.h5 W_enc b_enc W_dec b_dec && pass "e: weights bit-identical to the uninterrupted run"

# d1, d2: scancel --signal=USR1 in the middle of harvest.
for d in d1 d2; do
  "$BIN/saepipe" status $d.toml >status-$d.log 2>&1; cat status-$d.log
  grep -qE "^  harvest +complete +SLURM job [0-9]+ COMPLETED; requeued 1x; resumed from [0-9]+ of 128 shards" status-$d.log \
    && pass "$d: harvest requeued once and resumed from its shards" || fail "$d: $(cat $d/slurm/harvest-*.out | tail)"
  same_h5 ref/activations/activations.h5 $d/activations/activations.h5 activations/blocks.0.hook_resid_post tokens sequence position \
    && pass "$d: store identical to the uninterrupted one"
done
grep -q "started with mpirun" d2/slurm/harvest-*.out && pass "d2: ranks started by mpirun" || fail "d2: launcher"

# c: two nodes; train requeued twice; stats once, after it.
"$BIN/saepipe" status c.toml >status-c.log 2>&1; cat status-c.log
for s in harvest train stats; do
  grep -q "on host n1 " c/slurm/$s-*.out && grep -q "on host n2 " c/slurm/$s-*.out \
    && pass "c: $s ran ranks on n1 and n2" || fail "c: $s hosts: $(grep 'on host' c/slurm/$s-*.out)"
done
grep -qE "^  train +complete +SLURM job $C_ID COMPLETED; requeued 2x; resumed from step [0-9]+ of 1000, step [0-9]+ of 1000" status-c.log \
  && pass "c: train requeued twice, resumed each time" || fail "c: train: $(cat c/stages.jsonl)"
grep -q "SLURM job $C_ID (restart 2)" c/slurm/train-*.out \
  && pass "c: the requeues by scontrol (as by a node failure) count as restarts against max_requeues" \
  || fail "c: restart count: $(grep 'SLURM job' c/slurm/train-*.out)"
[ "$(events c train start)" = 3 ] && [ "$(events c train end)" = 1 ] && [ "$(events c stats start)" = 1 ] \
  && pass "c: train ran 3 times, stats once" || fail "c: runs: $(cat c/stages.jsonl)"
$PY - <<'P' && pass "c: stats started after train's last run ended" || fail "c: stats ran before train was done"
import json, sys
ev = [json.loads(l) for l in open("c/stages.jsonl")]
train_end = max(e["time"] for e in ev if e["stage"] == "train" and e["event"] == "end")
stats_start = min(e["time"] for e in ev if e["stage"] == "stats" and e["event"] == "start")
sys.exit(0 if stats_start >= train_end else 1)
P
[ -s c/stats/summary.json ] && pass "c: stats complete" || fail "c: no stats"
same_h5 ref/activations/activations.h5 c/activations/activations.h5 activations/blocks.0.hook_resid_post tokens sequence position \
  && pass "c: two-node store identical to the one-node store"
same_h5 ref2/sae/sae.h5 c/sae/sae.h5 W_enc b_enc W_dec b_dec && pass "c: two-node weights bit-identical to the one-node run"
finish
