#!/usr/bin/env bash
# Is a defaults-grid point's shortfall the loss or the optimisation? Trains ARCH (default topk) at
# grid point P (bench/defaults_grid.py, its seed and settings) from the default init, and the same job started
# from the true dictionary: a checkpoint at step 20 has its first G latents (G true features) set
# to the true features (encoder rows the same directions at the init's norm, b_enc 0, Adam
# moments 0), then the run resumes. Prints MMCS and held-out FVU of both (stats stage).
#   bash bench/truth_init.sh [--build build] [--out /tmp/saepipe_truth_init] [--point 2] [--tokens 3000000]
#       [--arch topk|batchtopk|relu|jumprelu|matryoshka]
# Needs h5py and numpy (PYTHON, default /usr/bin/python3 with Debian's python3-h5py).
set -euo pipefail
BUILD=build OUT=/tmp/saepipe_truth_init P=2 TOKENS=3000000 ARCH=topk PY=${PYTHON:-/usr/bin/python3}
while (($#)); do
  case "$1" in
    --build) BUILD=$2; shift 2 ;; --out) OUT=$2; shift 2 ;; --point) P=$2; shift 2 ;; --tokens) TOKENS=$2; shift 2 ;; --arch) ARCH=$2; shift 2 ;;
    *) echo "truth_init.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
BUILD=$(realpath "$BUILD")
mkdir -p "$OUT"; OUT=$(realpath "$OUT")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=passive
"$PY" bench/defaults_grid.py --build "$BUILD" --out "$OUT/default" --points "$P" --archs "$ARCH" --tokens "$TOKENS" \
  | grep -E "^point|^  $ARCH"
# The same job in its own directory, checkpointing every 20 steps.
sed -e "s#^dir = .*#dir = \"$OUT/truth/grid$P\"#" -e "s#^heldout_fraction = 0.1#heldout_fraction = 0.1\ncheckpoint_every = 20#" \
  "$OUT/default/grid$P.toml" > "$OUT/truth.toml"
"$BUILD/saepipe" run "$OUT/truth.toml" --only harvest > "$OUT/truth.harvest.log" 2>&1
STATE="$OUT/truth/grid$P/sae/train_state.h5"
rm -f "$STATE"
"$BUILD/saepipe" run "$OUT/truth.toml" --only train > "$OUT/truth.train1.log" 2>&1 &
pid=$!
until [ -f "$STATE" ] && h5dump -a step "$STATE" 2>/dev/null | grep -q "(0): [1-9]"; do
  kill -0 $pid 2>/dev/null || { echo "truth_init.sh: the train stage ended before its first checkpoint" >&2; exit 1; }
  sleep 0.05
done
{ kill -9 $pid; wait $pid; } 2>/dev/null || true
pkill -9 -f "saepipe-train.*truth.toml" || true
"$PY" - "$STATE" "$OUT/truth/grid$P/activations/ground_truth.h5" <<'PY'
import sys, h5py, numpy as np
state, truth_path = sys.argv[1], sys.argv[2]
truth = h5py.File(truth_path, "r")["features"][...].astype(np.float64)
truth /= np.linalg.norm(truth, axis=1, keepdims=True)
G, D = truth.shape
with h5py.File(state, "r+") as f:
    F = int(f.attrs["d_sae"])
    assert int(f.attrs["d_in"]) == D and G <= F
    p = f["params"][...]  # W_encT [F,D], b_enc [F], W_dec [F,D], b_dec [D], ... (SaeParams)
    W_encT = p[: F * D].reshape(F, D)
    W_dec = p[F * D + F: 2 * F * D + F].reshape(F, D)
    W_encT[:G] = truth * np.linalg.norm(W_encT[:G], axis=1, keepdims=True)
    W_dec[:G] = truth
    p[F * D: F * D + G] = 0.0
    f["params"][...] = p
    for m in ("adam_m", "adam_v"):
        f[m][...] = 0.0
    f["since_fired"][...] = 0
    print(f"truth written into {G} of {F} latents at step {int(f.attrs['step'])}")
PY
"$BUILD/saepipe" run "$OUT/truth.toml" --only train > "$OUT/truth.train2.log" 2>&1
grep -q "resuming" "$OUT/truth.train2.log" || { echo "truth_init.sh: the train stage did not resume" >&2; exit 1; }
cat > "$OUT/truth_stats.toml" <<T
[run]
name = "truth_stats"
dir = "$OUT/truth_stats"
[stats]
activations = "$OUT/truth/grid$P/activations"
sae = "$OUT/truth/grid$P/sae/sae.h5"
n_tokens = 0
top_examples = 4
interval_bins = 0
T
"$BUILD/saepipe" run "$OUT/truth_stats.toml" --only stats > "$OUT/truth_stats.log" 2>&1
"$PY" - "$OUT/default/grid${P}_${ARCH}/stats/summary.json" "$OUT/truth_stats/stats/summary.json" <<'PY'
import json, sys
for name, path in zip(("default init", "truth init"), sys.argv[1:]):
    s = json.load(open(path))
    print(f"{name:12s} MMCS {s['mmcs']:.4f}  FVU {s['fvu']:.4f}  L0 {s['l0']:.2f}  dead {s['dead_fraction']:.3f}")
PY
