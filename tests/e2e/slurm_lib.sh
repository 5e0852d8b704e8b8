# Shared by the SLURM tests (sourced after lib.sh): a local two-node SLURM (n1, n2:
# scripts/local_slurm.sh) for this test, stopped on exit; skipped (77) without root, slurm-wlm
# and munge.
if [ "$(id -u)" -ne 0 ] || ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  echo "skipped: needs root, slurm-wlm and munge"; exit 77
fi
eval "$(bash "$SRC/scripts/local_slurm.sh" start "$WORK/cluster" 2)" || { echo "cannot start SLURM"; exit 1; }
trap 'scancel -u root 2>/dev/null; bash "$SRC/scripts/local_slurm.sh" stop "$WORK/cluster"' EXIT

# wait_idle [SECONDS]: until no job is queued or running (a stuck queue ends the test).
wait_idle() {
  local limit=${1:-240} i
  for i in $(seq "$limit"); do [ -z "$(squeue -h 2>/dev/null)" ] && return 0; sleep 1; done
  fail "jobs still queued after $limit s: $(squeue)"; finish
}
# job_of STAGE LOG: the SLURM job id `saepipe submit` printed for STAGE.
job_of() { sed -n "s/^submitted $1 as SLURM job \([0-9]*\)$/\1/p" "$2"; }
# events RUN_DIR STAGE EVENT: how many such records the run's stages.jsonl holds.
events() { grep "\"event\":\"$3\"" "$1/stages.jsonl" 2>/dev/null | grep -c "\"stage\":\"$2\""; }
# same_h5 A B DATASET...: the datasets of two HDF5 files are equal, bit for bit.
same_h5() {
  $PY - "$@" <<'P'
import sys, h5py, numpy as np
a, b, keys = sys.argv[1], sys.argv[2], sys.argv[3:]
with h5py.File(a) as fa, h5py.File(b) as fb:
    bad = [k for k in keys if not np.array_equal(fa[k][...], fb[k][...])]
if bad: print(f"{b} differs from {a} in {bad}")
sys.exit(1 if bad else 0)
P
}
