#!/usr/bin/env bash
# One command from a fresh Debian machine: install, build, run every test (ctest: unit, MPI,
# end to end, SLURM, reliability), then the fuzzers for a bounded time under ASan/UBSan.
# SAEPIPE_SKIP_FUZZ=1 skips the fuzzers; FUZZ_SECONDS sets their time per target (20).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
# The stage programs run directly (not through saepipe run) get saepipe run's default too:
# OpenMP threads that sleep when idle, since the tests run several ranks on 2 cores.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
(cd build && OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} ctest --output-on-failure -j1 "$@")
if [ "${SAEPIPE_SKIP_FUZZ:-0}" != 1 ]; then
  FUZZ_SECONDS=${FUZZ_SECONDS:-20} bash tests/fuzz/run_fuzzers.sh
fi
