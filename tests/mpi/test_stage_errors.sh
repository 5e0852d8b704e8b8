#!/usr/bin/env bash
# The error policy of DESIGN.md ("Errors and exit codes") with real ranks, through the stage
# driver every stage program uses (tests/probe/stage_error_probe.cpp): an error one rank sees
# is one line "[rank r@host] file:line kind: message" from that rank, then MPI_Abort ends the
# job with the error's code while the other ranks wait in a collective (no hang); an error
# every rank sees is one line from rank 0 and a clean exit with its code.
source "$(dirname "$(dirname "$0")")/e2e/lib.sh" "$1"
P=$BIN/saepipe-probe
[ -x "$P" ] || { fail "$P not built"; finish; }
SAEPIPE_PROBE=none mpirun_np 3 "$P" --job - >none.log 2>&1 && pass "the probe succeeds when told to" || fail "probe none: $(tail -3 none.log)"
for np in 2 3; do
  SAEPIPE_PROBE=one expect_rank_error 2 $((np - 1)) "error: probe: only rank $((np - 1)) failed" -- mpirun_np $np "$P" --job -
done
# An exception that is not one of saepipe's errors has no source location: rank, host, exit 1.
SAEPIPE_PROBE=internal expect_error 1 "^saepipe-probe: \[rank 2@[^]]*\] internal error: probe: an exception outside" -- mpirun_np 3 "$P" --job -
SAEPIPE_PROBE=all expect_error 2 "^saepipe-probe: error: probe: every rank failed" -- mpirun_np 3 "$P" --job -
finish
