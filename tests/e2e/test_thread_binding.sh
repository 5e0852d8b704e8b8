#!/usr/bin/env bash
# A rank with more OpenMP threads than cores to run them on (what mpirun's default binding to one
# core per rank does) is told so once, at stage start, with how to launch instead; the stage
# still runs. With threads that fit, or under `saepipe run` (--bind-to none), nothing is said.
source "$(dirname "$0")/lib.sh" "$1"
command -v taskset >/dev/null || { echo "skipped: no taskset"; exit 77; }
cat > job.toml <<T
[run]
name = "bind"
dir = "run"
[harvest]
n_tokens = 8192
context = 64
shard_tokens = 4096
[harvest.synthetic]
d_model = 16
n_features = 32
mean_active = 2.0
T
OMP_NUM_THREADS=2 taskset -c 0 "$BIN/saepipe-harvest" --job job.toml >pinned.log 2>&1 && pass "harvest ran pinned to one core" || { fail "pinned harvest"; cat pinned.log; }
n=$(grep -c '^saepipe-harvest: warning: 1 rank(s) run 2 threads on 1 core(s)' pinned.log)
[ "$n" = 1 ] && pass "one warning: $(grep '^saepipe-harvest: warning' pinned.log | cut -c1-120)..." || { fail "$n warnings"; cat pinned.log; }
grep -q -- "--bind-to none" pinned.log && pass "the warning says how to launch" || fail "no launch advice"
rm -rf run
OMP_NUM_THREADS=1 taskset -c 0 "$BIN/saepipe-harvest" --job job.toml >fits.log 2>&1 || fail "harvest with 1 thread"
grep -q "warning" fits.log && fail "warned with 1 thread on 1 core: $(cat fits.log)" || pass "no warning when the threads fit"
rm -rf run
OMP_NUM_THREADS=$(nproc) "$BIN/saepipe" run job.toml --only harvest --ranks 2 >run.log 2>&1 || fail "saepipe run"
grep -q "warning" run.log && fail "saepipe run (--bind-to none) warned: $(cat run.log)" || pass "no warning under saepipe run --ranks 2"
finish
