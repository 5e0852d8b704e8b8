#!/usr/bin/env bash
# `saepipe submit` on a real (local, two-node) SLURM: the chain runs to the end; the stages read
# the snapshot of the job taken at submission (editing the file later changes nothing); ranks
# start with srun when SLURM offers PMIx, else with mpirun (launcher / SAEPIPE_LAUNCH force
# one); a failing stage cancels its dependents; re-submitting after a stage failed mid-run
# resumes it from its checkpoint (complete stages do nothing; weights as uninterrupted);
# re-submitting a finished run does nothing; `saepipe status` tells each stage's state.
source "$(dirname "$0")/lib.sh" "$1"
source "$LIB_DIR/slurm_lib.sh"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

job() {  # job NAME [TOML LINES...]
  local name=$1; shift
  { printf '[run]\nname = "%s"\n' "$name"
    cat <<'T'
[harvest]
n_tokens = 16384
context = 128
shard_tokens = 4096
[harvest.synthetic]
d_model = 16
n_features = 32
mean_active = 2.0
[train]
d_sae = 256
k = 2
n_tokens = 24576000
batch_tokens = 2048
lr = 0.003
checkpoint_every = 100
log_every = 10
[resources.harvest]
ranks = 2
[resources.train]
ranks = 2
T
    for l in "$@"; do printf '%s\n' "$l"; done
  } > "$name.toml"
}

# The chain, submitted held; the job file is edited before it runs.
job slurmjob
SAEPIPE_SBATCH="sbatch --hold" "$BIN/saepipe" submit slurmjob.toml >submit.log 2>&1 && pass "submitted (held)" || fail "submit: $(cat submit.log)"
[ "$(grep -c 'submitted .* as SLURM job' submit.log)" = 4 ] && pass "four chained jobs" || fail "submit output: $(cat submit.log)"
sed -i 's/^d_sae = 256/d_sae = 32/' slurmjob.toml
for id in $(sed -n 's/^submitted .* as SLURM job //p' submit.log); do scontrol release "$id"; done

# Launchers: auto (srun here: PMIx is offered), SAEPIPE_LAUNCH=mpirun, auto where srun offers
# no PMIx (an srun that hides it) and the job's launcher = "mpirun" overridden by SAEPIPE_LAUNCH.
mkdir -p nopmix && cat > nopmix/srun <<'S'
#!/bin/bash
# srun as on a cluster without PMIx: its MPI plugin list lacks pmix.
if [ "$*" = "--mpi=list" ]; then /usr/bin/srun --mpi=list 2>&1 | grep -v pmix; exit 0; fi
exec /usr/bin/srun "$@"
S
chmod +x nopmix/srun
job envmpirun; job nopmix; job jobmpirun; job mpi2
sed -i 's/^\[resources.train\]/launcher = "mpirun"\n[resources.train]/' jobmpirun.toml   # in [resources.harvest]
sed -i 's/^\[resources.train\]/launcher = "mpirun"\nnodes = 2\n[resources.train]/' mpi2.toml  # mpirun over two nodes
"$BIN/saepipe" submit mpi2.toml --only harvest >submit-l4.log 2>&1 || fail "submit mpi2"
SAEPIPE_LAUNCH=mpirun "$BIN/saepipe" submit envmpirun.toml --only harvest >submit-l1.log 2>&1 || fail "submit envmpirun"
PATH="$PWD/nopmix:$PATH" "$BIN/saepipe" submit nopmix.toml --only harvest >submit-l2.log 2>&1 || fail "submit nopmix"
SAEPIPE_LAUNCH=srun "$BIN/saepipe" submit jobmpirun.toml --only harvest >submit-l3.log 2>&1 || fail "submit jobmpirun"

# A stage whose ranks get the stop signal before they can catch it: an srun that (first run only)
# sends the script SIGUSR1, as SLURM's warning would, and dies by the SIGUSR1 the script passes
# on (128 + 10, as srun reports ranks killed by it). The script requeues it as interrupted.
mkdir -p early && cat > early/srun <<'S'
#!/bin/bash
if [ "${SLURM_RESTART_COUNT:-0}" = 0 ] && [ "$1" = --mpi=pmix ]; then sleep 1; kill -USR1 $PPID; exec sleep 60; fi
exec /usr/bin/srun "$@"
S
chmod +x early/srun
job early
PATH="$PWD/early:$PATH" "$BIN/saepipe" submit early.toml --only harvest >submit-early.log 2>&1 || fail "submit early"

# A train that fails mid-run (a rank killed, as by the OOM killer), then the chain again; and a
# train stopped by a signal that may not requeue itself (max_requeues = 0).
job crash; job nomore 'max_requeues = 0'
"$BIN/saepipe" submit crash.toml >submit-crash.log 2>&1 || fail "submit crash: $(cat submit-crash.log)"
"$BIN/saepipe" submit nomore.toml --only harvest,train,stats >submit-nomore.log 2>&1 || fail "submit nomore: $(cat submit-nomore.log)"
steps() { [ -f "runs/$1/sae/train_log.jsonl" ] && echo $(( $(wc -l < "runs/$1/sae/train_log.jsonl") * 10 )) || echo 0; }
crashed=0 stopped=0
for _ in $(seq 3000); do
  if [ $crashed = 0 ] && [ -s runs/crash/sae/train_state.h5 ] && [ "$(steps crash)" -ge 200 ]; then
    # A rank: its command line starts with the program (srun's, which names it too, does not;
    # killing srun instead lets the ranks catch SLURM's SIGTERM and save a stop checkpoint).
    victim=$(pgrep -f "^[^ ]*saepipe-train --job $PWD/runs/crash/slurm/job-" | head -1)
    [ -n "$victim" ] && kill -9 "$victim" && pass "killed a rank of crash's train at step ~$(steps crash)"
    crashed=1
  fi
  if [ $stopped = 0 ] && [ "$(steps nomore)" -ge 100 ]; then
    scancel --signal=USR1 "$(job_of train submit-nomore.log)" && pass "scancel --signal=USR1 nomore's train at step ~$(steps nomore)"
    stopped=1
  fi
  [ $crashed = 1 ] && [ $stopped = 1 ] && break
  [ -z "$(squeue -h)" ] && break
  sleep 0.1
done
[ $crashed = 1 ] && [ $stopped = 1 ] || fail "crash's or nomore's train ended before it could be stopped"
wait_idle 300
"$BIN/saepipe" status nomore.toml >status-nomore.log 2>&1; cat status-nomore.log
grep -qE "^  train .*FAILED; last run|^  train .*FAILED$" status-nomore.log \
  && grep -q "max_requeues (0) is reached: submit the job again to resume" runs/nomore/slurm/train-*.out \
  && grep -qE "^  stats .*CANCELLED" status-nomore.log \
  && pass "max_requeues = 0: the stopped train is not requeued, its job fails, stats is cancelled" \
  || fail "nomore: $(tail -5 runs/nomore/slurm/train-*.out)"

"$BIN/saepipe" status slurmjob.toml >status.log 2>&1; cat status.log
[ "$(grep -c ' complete .*COMPLETED' status.log)" = 4 ] && pass "every stage COMPLETED" || { fail "status"; cat runs/slurmjob/slurm/*.out; }
[ -s runs/slurmjob/stats/summary.json ] && [ -s runs/slurmjob/interpret/index.html ] && pass "outputs written" || fail "outputs missing"
$PY -c "import h5py,sys; sys.exit(h5py.File('runs/slurmjob/sae/sae.h5')['W_enc'].shape[1] != 256)" \
  && pass "the job file edited after submitting changed nothing (d_sae 256)" || fail "the edited job file reached the run"
grep -q "started with srun" runs/slurmjob/slurm/harvest-*.out && pass "auto: srun (PMIx offered)" || fail "auto launcher: $(head -3 runs/slurmjob/slurm/harvest-*.out)"
for c in "envmpirun mpirun SAEPIPE_LAUNCH=mpirun" "nopmix mpirun auto-without-PMIx" "jobmpirun srun SAEPIPE_LAUNCH-over-the-job's-launcher"; do
  set -- $c
  out=$(cat runs/$1/slurm/harvest-*.out)
  grep -q "started with $2" <<<"$out" && [ -s runs/$1/activations/manifest.json ] && pass "$3: $2, harvest complete" \
    || fail "$3: $(head -5 <<<"$out")"
done

"$BIN/saepipe" status early.toml >status-early.log 2>&1; cat status-early.log
grep -qE "^  harvest +complete +SLURM job [0-9]+ COMPLETED; requeued 1x" status-early.log \
  && grep -q "stopped after saving its progress; requeueing" runs/early/slurm/harvest-*.out \
  && pass "ranks ended by the stop signal itself: requeued, harvest complete" \
  || fail "early: $(grep -v '%' runs/early/slurm/harvest-*.out | tail -5)"

grep -q "started with mpirun" runs/mpi2/slurm/harvest-*.out && grep -q "on host n1 " runs/mpi2/slurm/harvest-*.out \
  && grep -q "on host n2 " runs/mpi2/slurm/harvest-*.out && pass "mpirun in a two-node allocation: a rank on n1 and n2" \
  || fail "mpi2: $(grep -v '%' runs/mpi2/slurm/harvest-*.out | head -8)"
same_h5 runs/slurmjob/activations/activations.h5 runs/mpi2/activations/activations.h5 activations/blocks.0.hook_resid_post tokens \
  && pass "mpi2: the two-node store equals the one-node store"

"$BIN/saepipe" status crash.toml >status-crash.log 2>&1; cat status-crash.log
grep -qE "^  train .*FAILED" status-crash.log && grep -qE "^  stats .*CANCELLED" status-crash.log \
  && pass "train FAILED, its dependents cancelled" || fail "crash status"
"$BIN/saepipe" submit crash.toml >submit-crash2.log 2>&1 || fail "re-submit crash"
wait_idle 300
"$BIN/saepipe" status crash.toml >status-crash2.log 2>&1; cat status-crash2.log
[ "$(grep -c ' complete .*COMPLETED' status-crash2.log)" = 4 ] && pass "re-submitted chain completed" || fail "re-submitted chain"
grep -q "is complete; nothing to do" runs/crash/slurm/harvest-"$(job_of harvest submit-crash2.log)".out \
  && pass "re-submission: the complete harvest did nothing" || fail "harvest redone"
grep -qE "resuming runs/crash/sae at step [1-9][0-9]*00$" runs/crash/slurm/train-"$(job_of train submit-crash2.log)".out \
  && pass "re-submission: train resumed from its last periodic checkpoint" || fail "train not resumed"
same_h5 runs/slurmjob/sae/sae.h5 runs/crash/sae/sae.h5 W_enc b_enc W_dec b_dec \
  && pass "weights after the failure and re-submission equal the uninterrupted run's"

# A failing stage: train reads a directory that holds no store.
mkdir -p notastore
job slurmfail; sed 's/^d_sae = 256/activations = "notastore"\nd_sae = 256/' slurmfail.toml > fail.toml
"$BIN/saepipe" submit fail.toml --only train,stats,interpret >submit2.log 2>&1 || fail "submit fail.toml: $(cat submit2.log)"
wait_idle
"$BIN/saepipe" status fail.toml >status2.log 2>&1
cat status2.log
grep -qE "^  train .*FAILED" status2.log && pass "train FAILED" || fail "train state"
grep -qE "^  stats .*CANCELLED" status2.log && grep -qE "^  interpret .*CANCELLED" status2.log \
  && pass "dependents cancelled" || fail "dependents not cancelled"
grep -q "no activation store here" runs/slurmfail/slurm/train-*.out && pass "the stage log names the problem" || fail "train log"

# Re-submitting the finished job: harvest, train and stats find their outputs complete (interpret
# renders its site again).
sed -i 's/^d_sae = 32/d_sae = 256/' slurmjob.toml
"$BIN/saepipe" submit slurmjob.toml >submit3.log 2>&1 || fail "re-submit"
wait_idle
n=0
for s in harvest train stats; do
  grep -q "nothing to do" runs/slurmjob/slurm/$s-"$(job_of $s submit3.log)".out && n=$((n + 1))
done
[ "$n" = 3 ] && pass "re-submitted stages found their outputs complete" || fail "re-submit redid work ($n of 3 did nothing)"
finish
