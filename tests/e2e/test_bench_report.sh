#!/usr/bin/env bash
# The benchmark report with its peers (`bench/report.py --quick`: small shapes; eai-sparsify,
# SAELens and transformers from the venv of scripts/python_env.sh), checked by parsing it:
# every table row has its numbers, every implementation's loss falls, saepipe's and
# transformers' activations agree, the charts parse (tests/python/check_bench_report.py).
# No expected figure: timings vary. The checker must also reject a report whose loss rose or
# that lacks a number, so it is run on two altered copies as well.
source "$(dirname "$0")/lib.sh" "$1"
unset OMP_NUM_THREADS   # the report gives every implementation the same threads itself

if VENV_PY=$(bash "$SRC/scripts/python_env.sh"); then pass "venv: $VENV_PY"; else fail "scripts/python_env.sh"; finish; fi
start=$SECONDS
if /usr/bin/python3 "$SRC/bench/report.py" --quick --build "$BIN" --out report --python "$VENV_PY" >report.log 2>&1; then
  pass "report.py --quick ran in $((SECONDS - start)) s"
else
  fail "report.py exit $?"; tail -20 report.log
fi
if /usr/bin/python3 "$SRC/tests/python/check_bench_report.py" report; then pass "report checked"; else
  fail "report check"; cat report/report.md; fi

# The checker fails a report whose loss rose, and one with a row without a number.
mkdir -p rose blank
cp report/*.svg rose/ && cp report/*.svg blank/
/usr/bin/python3 - report/report.md rose/report.md blank/report.md <<'P'
import re, sys
md = open(sys.argv[1]).read()
open(sys.argv[2], "w").write(re.sub(r"\| ([0-9.e+-]+) → ([0-9.e+-]+) \|", r"| \2 → 9\1 |", md, count=1))
lines = md.splitlines()
i = next(i for i, l in enumerate(lines) if l.startswith("| eai-sparsify"))
cells = lines[i].split("|")
cells[3] = " failed "
lines[i] = "|".join(cells)
open(sys.argv[3], "w").write("\n".join(lines) + "\n")
P
/usr/bin/python3 "$SRC/tests/python/check_bench_report.py" rose >rose.log && fail "a rising loss passed the check" \
  || { grep -q "did not fall" rose.log && pass "a rising loss fails the check" || fail "rose: $(cat rose.log)"; }
/usr/bin/python3 "$SRC/tests/python/check_bench_report.py" blank >blank.log && fail "a row without a number passed" \
  || { grep -q "not a positive number" blank.log && pass "a row without a number fails the check" || fail "blank: $(cat blank.log)"; }
finish
