# Shared helpers of the end-to-end and MPI test scripts. Usage: source lib.sh WORKDIR
set -uo pipefail
LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PATH="$LIB_DIR/bin:$PATH"   # mpirun_np
WORK=$1
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1
BIN=${SAEPIPE_BIN:?}
SRC=${SAEPIPE_SRC:?}
PY=/usr/bin/python3   # Debian's python with h5py and numpy
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
FAILED=0
pass() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; FAILED=1; }
finish() { if [ "$FAILED" = 0 ]; then echo "all checks passed"; exit 0; else exit 1; fi; }

# error_lines FILE: the error lines of a stage program's or the driver's stderr. Stage programs
# write theirs as "saepipe-<stage>: <kind>: ..." (an error every rank saw, told by rank 0) or
# "saepipe-<stage>: [rank r@host] file:line <kind>: ..." (one rank's, before MPI_Abort);
# warnings ("saepipe-<stage>: warning: ...") and progress lines are not errors. The driver's own
# errors are "saepipe: ..."; its echo of a launched command (holding "--job ") and its closing
# "stage X failed with exit code N" line are not.
error_lines() {
  grep -E '^saepipe-[a-z]+: (error|data corruption|system error|internal error|\[rank )|^saepipe: ' "$1" |
    grep -vE '^saepipe: (stage [a-z]+ failed with exit code|.* --job )'
}

# expect_error CODE PATTERN -- CMD...: CMD exits CODE within 120 s and its stderr has exactly
# one error line (error_lines), which matches PATTERN. Zero lines (a crash, an MPI_Abort
# banner alone) fails like two (an error told once per rank).
expect_error() {
  local code=$1 pattern=$2; shift 3
  local err="$WORK/stderr.txt"
  timeout 120 "$@" >/dev/null 2>"$err"
  local rc=$?
  local lines; lines=$(error_lines "$err" | grep -c .)
  if [ $rc -eq 124 ]; then fail "hang (timeout) for: $*"; return 1; fi
  if [ $rc -ne "$code" ]; then fail "exit $rc (want $code) for: $* -- $(head -c 600 "$err")"; return 1; fi
  if [ "$lines" -ne 1 ]; then fail "$lines lines of error output (want 1) for: $* -- $(head -c 600 "$err")"; return 1; fi
  if ! error_lines "$err" | grep -q -- "$pattern"; then fail "message lacks '$pattern' for: $* -- $(head -c 600 "$err")"; return 1; fi
  pass "exit $code, '$pattern'"
}

# expect_rank_error CODE RANK PATTERN -- CMD...: as expect_error, for an error only rank RANK
# saw: its one line is "saepipe-<stage>: [rank RANK@host] file.cpp:line <kind>: ...PATTERN".
expect_rank_error() {
  local code=$1 rank=$2 pattern=$3; shift 4
  expect_error "$code" "$pattern" -- "$@" || return 1
  local line; line=$(error_lines "$WORK/stderr.txt")
  if echo "$line" | grep -qE "^saepipe-[a-z]+: \[rank $rank@[^] ]+\] [A-Za-z0-9_]+\.(cpp|hpp):[0-9]+ [a-z ]+: "; then
    pass "one rank's error as [rank $rank@host] file:line: $line"
  else
    fail "not '[rank $rank@host] file:line kind: message': $line"; return 1
  fi
}

# Killing one rank of a training run at a checkpoint (mpi_train_resume, mpi_latent_shards).
descendants() { local c; for c in $(pgrep -P "$1"); do echo "$c"; descendants "$c"; done; }
rank_pid() {  # rank_pid LAUNCHER_PID RANK: the saepipe-train process of that rank
  local p
  for p in $(descendants "$1"); do
    [ "$(cat /proc/$p/comm 2>/dev/null)" = saepipe-train ] || continue
    tr '\0' '\n' </proc/$p/environ 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && { echo "$p"; return; }
  done
}
# checkpoint_step FILE: the step attribute of a train_state.h5 (0 while there is none). h5dump,
# not a Python start (0.2 CPU-s) every 0.1 s beside the ranks it waits for.
checkpoint_step() { h5dump -a /step -y "$1" 2>/dev/null | awk '/DATA \{/ {getline; print $1; f=1} END {if (!f) print 0}'; }
# wait_for_checkpoint LAUNCHER_PID FILE MIN_STEP: until FILE holds a step >= MIN_STEP, the
# launcher ends, or 300 s pass.
wait_for_checkpoint() {
  local until=$((SECONDS + 300))
  while kill -0 "$1" 2>/dev/null && [ "$(checkpoint_step "$2")" -lt "$3" ] && [ $SECONDS -lt $until ]; do sleep 0.1; done
}
