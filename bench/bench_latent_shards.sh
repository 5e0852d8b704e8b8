#!/usr/bin/env bash
# Latent sharding's figures (issue 14), one run: bench_latent_shards (the train stage's CPU step,
# TopK) at d_in 768, d_sae 131072, the same global batch, on the grids
#   1x1 (one rank), 1x2, 1x4 (latent shards) and 2x1 (2 data-parallel ranks):
# per rank the steps' peak resident memory (and the start's: each rank draws its own latents),
# tokens/s of the grid and the share of step time in collectives; with --write, the peak and time
# of writing train_state.h5 and sae.h5 (sharded: collectively, each rank its latent range; and the
# same run's reference: the whole state gathered and written by rank 0, as before).
# The whole dictionary's step state (P = 2 x 768 x 131072 + 2 x 131072 + 768 = 201.6 M values):
# parameters 0.81 GB, Adam moments 1.61 GB, float64 gradient 1.61 GB, its float32 copy 0.81 GB:
# 4.8 GB on an unsharded rank, 4.8 / S GB (plus b_dec) on a shard.
# Each grid runs with OMP_NUM_THREADS = cores / ranks (at least 1): with S = 4 on a 2-core
# machine the ranks oversubscribe the cores (then it measures memory, not speed).
# Writes OUT/latent_shards.jsonl and prints a markdown table.
#   bash bench/bench_latent_shards.sh [--build build] [--out DIR] [--f 131072] [--batch 2048]
#        [--steps 2] [--grids "1x1 1x2 1x4 2x1"] [--write]  (--write: ~3.2 GB of files per grid, removed)
set -euo pipefail
BUILD=build OUT=/tmp/saepipe_bench_latent_shards F=131072 BATCH=2048 STEPS=2 GRIDS="1x1 1x2 1x4 2x1" WRITE=0
while (($#)); do
  case "$1" in
    --build) BUILD=$2; shift 2 ;; --out) OUT=$2; shift 2 ;; --f) F=$2; shift 2 ;; --batch) BATCH=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;; --grids) GRIDS=$2; shift 2 ;; --write) WRITE=1; shift ;;
    *) echo "bench_latent_shards.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
BIN=$(realpath "$BUILD")/bench/bench_latent_shards
[ -x "$BIN" ] || { echo "bench_latent_shards.sh: $BIN missing (bash scripts/build.sh bench_latent_shards)" >&2; exit 2; }
mkdir -p "$OUT"
RES=$(realpath "$OUT")/latent_shards.jsonl
: > "$RES"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=passive
CORES=$(nproc)
echo "machine: $CORES cores, load $(cut -d' ' -f1-3 /proc/loadavg) before" >&2
for grid in $GRIDS; do
  groups=${grid%x*} shards=${grid#*x} np=$((${grid%x*} * ${grid#*x}))
  threads=$(( CORES / np > 0 ? CORES / np : 1 ))
  write=()
  if ((WRITE)); then mkdir -p "$OUT/ckpt_$grid"; write=(--write "$(realpath "$OUT")/ckpt_$grid"); fi
  OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads \
    mpirun -q --bind-to none --oversubscribe -np "$np" "$BIN" --d 768 --f "$F" --k 32 --batch "$BATCH" \
    --shards "$shards" --steps "$STEPS" --warmup 1 "${write[@]}" | tee -a "$RES"
  rm -rf "$OUT/ckpt_$grid"
  echo "  (grid $grid done; load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
done
python3 - "$RES" <<'P'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
base = {r["grid"]: r for r in rows}
mb = lambda r, k: ", ".join(f"{v:.0f}" for v in r.get(k, [])) or "-"
s = lambda r, k: f"{max(r[k]):.1f}" if k in r else "-"
print("| grid (data groups x shards) | step peak MB per rank | start peak MB per rank | tokens/s | comm fraction "
      "| write peak MB per rank (s) | gathered write peak MB per rank (s) |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['grid']} | {mb(r, 'step_peak_mb')} | {mb(r, 'start_peak_mb')} | {r['tokens_per_s']:.0f} | "
          f"{', '.join(f'{v:.2f}' for v in r['comm_fraction'])} | {mb(r, 'write_peak_mb')} ({s(r, 'write_s')}) | "
          f"{mb(r, 'gather_write_peak_mb')} ({s(r, 'gather_write_s')}) |")
P
