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
