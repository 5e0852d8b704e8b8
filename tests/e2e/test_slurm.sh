#!/usr/bin/env bash
# `saepipe submit` on a real (one-node, local) SLURM: the chain runs to the end with srun or
# mpirun inside the allocations; a failing stage cancels its dependents; re-submitting
# resumes (complete stages do nothing); `saepipe status` tells each stage's state.
source "$(dirname "$0")/lib.sh" "$1"
if [ "$(id -u)" -ne 0 ] || ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  echo "skipped: needs root, slurm-wlm and munge"; exit 77
fi
eval "$(bash "$SRC/scripts/local_slurm.sh" start "$WORK/cluster")" || { echo "cannot start SLURM"; exit 1; }
trap 'bash "$SRC/scripts/local_slurm.sh" stop "$WORK/cluster"' EXIT

wait_idle() {  # until no job is queued or running (at most 240 s; a stuck queue ends the test)
  for _ in $(seq 240); do [ -z "$(squeue -h 2>/dev/null)" ] && return 0; sleep 1; done
  fail "jobs still queued after 240 s: $(squeue)"; scancel -u root; finish
}
cat > job.toml <<'T'
[run]
name = "slurmjob"
[harvest]
n_tokens = 16384
context = 128
shard_tokens = 4096
[harvest.synthetic]
d_model = 16
n_features = 32
mean_active = 2.0
[train]
d_sae = 64
k = 2
n_tokens = 40960
batch_tokens = 1024
lr = 0.003
[resources.harvest]
ranks = 2
[resources.train]
ranks = 2
T
if "$BIN/saepipe" submit job.toml >submit.log 2>&1; then pass "submitted"; else fail "submit: $(cat submit.log)"; fi
[ "$(grep -c 'submitted .* as SLURM job' submit.log)" = 4 ] && pass "four chained jobs" || fail "submit output: $(cat submit.log)"
wait_idle
"$BIN/saepipe" status job.toml >status.log 2>&1
cat status.log
[ "$(grep -c ' complete .*COMPLETED' status.log)" = 4 ] && pass "every stage COMPLETED" || { fail "status"; cat runs/slurmjob/slurm/*.out; }
[ -s runs/slurmjob/stats/summary.json ] && [ -s runs/slurmjob/interpret/index.html ] && pass "outputs written" || fail "outputs missing"

# A failing stage: train reads a directory that holds no store.
mkdir -p notastore
sed 's/^d_sae = 64/activations = "notastore"\nd_sae = 64/; s/name = "slurmjob"/name = "slurmfail"/' job.toml > fail.toml
"$BIN/saepipe" submit fail.toml --only train,stats,interpret >submit2.log 2>&1 || fail "submit fail.toml: $(cat submit2.log)"
wait_idle
"$BIN/saepipe" status fail.toml >status2.log 2>&1
cat status2.log
grep -qE "^  train .*FAILED" status2.log && pass "train FAILED" || fail "train state"
grep -qE "^  stats .*CANCELLED" status2.log && grep -qE "^  interpret .*CANCELLED" status2.log \
  && pass "dependents cancelled" || fail "dependents not cancelled"
grep -q "no activation store here" runs/slurmfail/slurm/train-*.out && pass "the stage log names the problem" || fail "train log"

# Re-submitting the finished job resumes: every stage finds its outputs complete.
"$BIN/saepipe" submit job.toml >submit3.log 2>&1 || fail "re-submit"
wait_idle
n=$(cat runs/slurmjob/slurm/*.out | grep -c "nothing to do")
[ "$n" -ge 3 ] && pass "re-submitted stages found their outputs complete" || fail "re-submit redid work ($n)"
finish
