#!/usr/bin/env bash
# Exploratory fuzzing, longer than CI's replay: each libFuzzer target (all, or those named:
# explore.sh fuzz_h5 fuzz_bpe) runs for EXPLORE_SECONDS (default 600) with a fresh random seed
# from its corpus (tests/fuzz/corpus/<name>/) plus what earlier explorations found
# (build-fuzz/explore-corpus/<name>/, kept between runs). A finding (crash, sanitizer report,
# leak, timeout, out-of-memory) is minimized and kept as a regression input
# tests/fuzz/corpus/<name>/regress_<kind>_<hash>, which run_fuzzers.sh (CI) replays from then
# on: commit it with the fix. Exit 1 when anything was found.
set -uo pipefail
cd "$(dirname "$0")/../.."
seconds=${EXPLORE_SECONDS:-600}
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSAEPIPE_FUZZ=ON >/dev/null || exit 1
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=($(cd tests/fuzz && ls fuzz_*.cpp | sed 's/\.cpp$//'))
cmake --build build-fuzz -j"$(nproc --all)" --target "${targets[@]}" >/dev/null || exit 1
status=0
for name in "${targets[@]}"; do
  corpus=tests/fuzz/corpus/${name#fuzz_}
  work=build-fuzz/explore-corpus/$name
  mkdir -p "$work"
  seed=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
  prefix=build-fuzz/explore-$name-
  rm -f "$prefix"*
  echo "explore: $name for ${seconds}s, seed $seed"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "build-fuzz/tests/fuzz/$name" -max_total_time="$seconds" -seed="$seed" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$prefix" "$work" "$corpus" > "build-fuzz/explore-$name.log" 2>&1
  found=0
  for a in "$prefix"*; do
    [ -f "$a" ] || continue
    found=1
    kind=$(basename "$a" | sed "s/^explore-$name-//; s/-.*//")
    min=$a.min
    "build-fuzz/tests/fuzz/$name" -minimize_crash=1 -runs=20000 -exact_artifact_path="$min" "$a" >/dev/null 2>&1 || true
    [ -s "$min" ] || min=$a
    keep="$corpus/regress_${kind}_$(sha1sum "$min" | cut -c1-12)"
    cp "$min" "$keep"
    echo "explore: $name found a $kind (seed $seed); kept as $keep; log: build-fuzz/explore-$name.log"
    grep -m3 -E "ERROR|SUMMARY|internal error" "build-fuzz/explore-$name.log"
  done
  if [ $found = 0 ]; then
    grep -E "^#[0-9]+\s+DONE|^Done" "build-fuzz/explore-$name.log" | tail -1
  else
    status=1
  fi
done
exit $status
