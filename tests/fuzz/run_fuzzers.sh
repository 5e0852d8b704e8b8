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
status=0
for src in tests/fuzz/fuzz_*.cpp; do
  name=$(basename "$src" .cpp)
  corpus=tests/fuzz/corpus/${name#fuzz_}
  work=$(mktemp -d)
  cp -r "$corpus"/. "$work"/ 2>/dev/null || true
  echo "fuzz: $name for ${seconds}s"
  if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
       "build-fuzz/tests/fuzz/$name" -max_total_time="$seconds" -seed="$seed" -timeout=10 -rss_limit_mb=2048 \
       -artifact_prefix="build-fuzz/$name-" "$work" 2>"build-fuzz/$name.log"; then
    echo "fuzz: $name found a problem:"; tail -40 "build-fuzz/$name.log"; status=1
  else
    grep -E "^(#[0-9]+\s+DONE|Done)" "build-fuzz/$name.log" | tail -1 || true
  fi
  rm -rf "$work"
done
exit $status
