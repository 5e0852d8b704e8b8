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

# expect_error CODE PATTERN -- CMD...: CMD exits CODE within 120 s and its stderr has exactly
# one line, matching PATTERN.
expect_error() {
  local code=$1 pattern=$2; shift 3
  local err="$WORK/stderr.txt"
  timeout 120 "$@" >/dev/null 2>"$err"
  local rc=$?
  # Error lines of the stage programs start with "saepipe-<stage>: " (progress lines with "[",
  # the driver's own with "saepipe: "); the error must be told once, not once per rank.
  local lines; lines=$(grep -cE '^saepipe-[a-z]+: ' "$err")
  if [ $rc -eq 124 ]; then fail "hang (timeout) for: $*"; return; fi
  if [ $rc -ne "$code" ]; then fail "exit $rc (want $code) for: $* -- $(head -c 600 "$err")"; return; fi
  if ! grep -q -- "$pattern" "$err"; then fail "message lacks '$pattern' for: $* -- $(head -c 600 "$err")"; return; fi
  if [ "$lines" -gt 1 ]; then fail "$lines lines of error output (want 1) for: $* -- $(head -c 600 "$err")"; return; fi
  pass "exit $code, '$pattern'"
}
