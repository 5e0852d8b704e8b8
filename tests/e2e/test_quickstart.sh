#!/usr/bin/env bash
# The quickstart end to end through `saepipe run`: every stage, the MMCS the issue asks
# for, an independent h5py/NumPy check of every output, and a re-run that does nothing.
source "$(dirname "$0")/lib.sh" "$1"
unset OMP_NUM_THREADS   # the driver shares the cores between ranks itself

start=$SECONDS
if "$BIN/saepipe" run "$SRC/jobs/quickstart.toml" >run.log 2>&1; then pass "quickstart ran"; else fail "quickstart exit $?"; tail -30 run.log; fi
echo "quickstart wall time: $((SECONDS - start))s"
grep -E "^\[(stats|train)" run.log | tail -4

S=runs/quickstart/stats/summary.json
if $PY -c "import json,sys; s=json.load(open('$S')); print('mmcs', s['mmcs'], 'fvu', s['fvu'], 'l0', s['l0']); sys.exit(0 if s['mmcs'] >= 0.95 else 1)"; then
  pass "MMCS >= 0.95"; else fail "MMCS below 0.95"; fi
if $PY "$SRC/tests/python/check_outputs.py" runs/quickstart; then pass "independent h5py/NumPy check"; else fail "independent check"; fi
for f in runs/quickstart/job.resolved.toml runs/quickstart/sae/train_log.jsonl runs/quickstart/stats/features.h5 runs/quickstart/interpret/index.html; do
  [ -s "$f" ] && pass "$f written" || fail "$f missing"
done
grep -q "MMCS vs ground truth" runs/quickstart/interpret/index.html && pass "index shows MMCS" || fail "index lacks MMCS"
if [ -n "$(find runs -name '*.tmp*')" ]; then fail "temporary files left behind"; else pass "no temporary files left"; fi

# A second run, of the embedded default (the same job), finds every stage complete.
if "$BIN/saepipe" run >rerun.log 2>&1; then pass "re-run exit 0"; else fail "re-run exit $?"; fi
n=$(grep -c "nothing to do" rerun.log)
[ "$n" = 3 ] && pass "re-run skipped harvest, train and stats" || { fail "re-run skipped $n of 3 stages"; cat rerun.log; }

for p in runs/quickstart/activations runs/quickstart/sae/sae.h5 runs/quickstart/stats; do
  if "$BIN/saepipe" inspect "$p" >inspect.log 2>&1; then pass "inspect $p"; else fail "inspect $p: $(cat inspect.log)"; fi
done
"$BIN/saepipe" validate "$SRC/jobs/quickstart.toml" | grep -q "d_sae = 512" && pass "validate prints the resolved job" || fail "validate"
finish
