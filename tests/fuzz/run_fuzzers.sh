#!/usr/bin/env bash
# Builds the libFuzzer targets with clang under ASan/UBSan into build-fuzz/ and runs each for
# a bounded time (FUZZ_SECONDS, default 20) from its seed corpus in tests/fuzz/corpus/<name>/
# (regression inputs live there too, each replayed first). Exit non-zero on any finding.
# FUZZ_SEED (default 1) fixes libFuzzer's mutation sequence, so a test run repeats a prefix of
# what a longer run with the same seed already searched; tests/fuzz/explore.sh runs longer with
# fresh seeds and keeps what it finds as regression inputs.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-20}
seed=${FUZZ_SEED:-1}
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSAEPIPE_FUZZ=ON >/dev/null
cmake --build build-fuzz -j"$(nproc --all)" --target $(cd tests/fuzz && ls fuzz_*.cpp | sed 's/\.cpp$//')
# One target per physical core at a time (FUZZ_JOBS overrides): each still runs its own seconds
# with its own seed on a core of its own, single-threaded, so it searches what it did alone
# (hyperthreads would share a core: not counted); reports are printed in order at the end.
parallel=${FUZZ_JOBS:-$(lscpu -p=CORE,SOCKET 2>/dev/null | grep -v '^#' | sort -u | grep -c . || echo 1)}
fuzz_one() {  # fuzz_one NAME: runs the target; its report in build-fuzz/NAME.report, exit status in NAME.rc
  local name=$1 work corpus=tests/fuzz/corpus/${1#fuzz_} rc=0
  work=$(mktemp -d)
  cp -r "$corpus"/. "$work"/ 2>/dev/null || true
  {
    echo "fuzz: $name for ${seconds}s"
    if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
         "build-fuzz/tests/fuzz/$name" -max_total_time="$seconds" -seed="$seed" -timeout=10 -rss_limit_mb=2048 \
         -artifact_prefix="build-fuzz/$name-" "$work" 2>"build-fuzz/$name.log"; then
      echo "fuzz: $name found a problem:"; tail -40 "build-fuzz/$name.log"; rc=1
    else
      grep -E "^(#[0-9]+\s+DONE|Done)" "build-fuzz/$name.log" | tail -1 || true
    fi
  } > "build-fuzz/$name.report"
  echo $rc > "build-fuzz/$name.rc"
  rm -rf "$work"
}
names=()
for src in tests/fuzz/fuzz_*.cpp; do
  name=$(basename "$src" .cpp)
  names+=("$name")
  rm -f "build-fuzz/$name.rc"
  while (($(jobs -rp | wc -l) >= parallel)); do wait -n || true; done
  fuzz_one "$name" &
done
wait
status=0
for name in "${names[@]}"; do
  cat "build-fuzz/$name.report"
  [ "$(cat "build-fuzz/$name.rc" 2>/dev/null)" = 0 ] || status=1
done
exit $status
