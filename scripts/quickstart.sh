#!/usr/bin/env bash
# One command from a fresh Debian machine: install, build, run jobs/quickstart.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh saepipe saepipe-harvest saepipe-train saepipe-stats saepipe-interpret
./build/saepipe run jobs/quickstart.toml "$@"
echo "quickstart: open runs/quickstart/interpret/index.html; summary: runs/quickstart/stats/summary.json"
