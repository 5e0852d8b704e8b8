#!/usr/bin/env bash
# Outputs stay inside the run directory. run.name cannot hold a path ("../x" is refused);
# run.dir may be absolute or contain "..": it is used as the user wrote it, and every file
# a run creates lies under it (inputs may be read from anywhere).
source "$(dirname "$0")/lib.sh" "$1"
mkdir -p cwd outside && cd cwd
cat > job.toml <<T
[run]
name = "conf"
dir = "../outside/sub/../run"
[harvest]
n_tokens = 8192
context = 64
shard_tokens = 2048
[harvest.synthetic]
d_model = 16
n_features = 32
mean_active = 2.0
[train]
d_sae = 32
k = 2
n_tokens = 8192
batch_tokens = 512
T
touch ../marker; sleep 1
"$BIN/saepipe" run job.toml --ranks 2 >run.log 2>&1 && pass "pipeline ran with run.dir = ../outside/sub/../run" || { fail "run"; cat run.log; }
new=$(cd .. && find . -newer marker -type f | grep -v '^./cwd/run.log$' | grep -v '^./outside/run/' || true)
[ -z "$new" ] && pass "every new file lies under the run directory" || fail "files written outside the run directory: $new"
[ -s ../outside/run/interpret/index.html ] && pass "outputs in ../outside/run" || fail "outputs missing"
[ ! -e ../outside/sub ] && pass "no directory made on the way (../outside/sub)" || fail "../outside/sub was created"
printf '[run]\nname = "../escape"\n' > bad.toml
expect_error 2 'run.name: "../escape" does not match' -- "$BIN/saepipe" run bad.toml
ABS=$(cd .. && pwd)/abs_run
sed "s#dir = \"../outside/sub/../run\"#dir = \"$ABS\"#" job.toml > abs.toml
"$BIN/saepipe" run abs.toml --only harvest >/dev/null 2>&1 && [ -s "$ABS/activations/manifest.json" ] \
  && pass "an absolute run.dir is honoured" || fail "absolute run.dir"
finish
