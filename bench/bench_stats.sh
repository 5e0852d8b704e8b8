#!/usr/bin/env bash
# Stats-stage throughput and peak memory for d_model D, d_sae F, TopK k over held-out token
# counts N... (default 131072 and 524288 at d 768, d_sae 24576, k 32), with a plain torch
# encode+TopK+per-latent counts pass (bench/peers/stats_torch_encode.py, run by PYTHON: default
# the venv of scripts/python_env.sh) as the same-run reference, with the same threads.
# Peak memory must not grow with N. Writes DIR/stats_bench.json and prints a markdown table.
#   bash bench/bench_stats.sh [--build build] [--out DIR] [--d 768] [--f 24576] [--k 32]
#                             [--tokens "131072 524288"] [--threads T] [--python PY]
set -euo pipefail
BUILD=build OUT=/tmp/saepipe_bench_stats D=768 F=24576 K=32 TOKENS="131072 524288" RANKS=1 THREADS= PY=
while (($#)); do
  case "$1" in
    --build) BUILD=$2; shift 2 ;; --out) OUT=$2; shift 2 ;; --d) D=$2; shift 2 ;; --f) F=$2; shift 2 ;;
    --k) K=$2; shift 2 ;; --tokens) TOKENS=$2; shift 2 ;; --ranks) RANKS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;; --python) PY=$2; shift 2 ;;
    *) echo "bench_stats.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
BUILD=$(realpath "$BUILD")
[ -n "$PY" ] || PY=$(bash scripts/python_env.sh)
mkdir -p "$OUT"
MAX=0; for n in $TOKENS; do ((n > MAX)) && MAX=$n; done
# Store: MAX held-out tokens after a 1% training split (+1 sequence for rounding).
STORE_TOKENS=$(( (MAX * 100 / 99 / 128 + 2) * 128 ))
cat > "$OUT/base.toml" <<T
[run]
name = "bench_stats"
dir = "$OUT/run"
[harvest]
n_tokens = $STORE_TOKENS
context = 128
shard_tokens = 65536
dtype = "float16"
[harvest.synthetic]
d_model = $D
n_features = $((2 * D))
mean_active = 8.0
[train]
d_sae = $F
k = $K
batch_tokens = 4096
n_tokens = 4096
heldout_fraction = 0.99
checkpoint_every = 0
T
"$BUILD/saepipe" run "$OUT/base.toml" --only harvest >"$OUT/harvest.log" 2>&1
"$BUILD/saepipe" run "$OUT/base.toml" --only train >"$OUT/train.log" 2>&1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
[ -n "$THREADS" ] || THREADS=$(( $(nproc --all) / RANKS )); ((THREADS > 0)) || THREADS=1
torch_ref=$(OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS "$PY" bench/peers/stats_torch_encode.py --d "$D" --f "$F" --k "$K" --threads "$THREADS")
results="["
for n in $TOKENS; do
  rm -rf "$OUT/run/stats"
  { cat "$OUT/base.toml"; printf '[stats]\nn_tokens = %s\n' "$n"; } > "$OUT/stats_$n.toml"
  /usr/bin/time -f "%e %M" -o "$OUT/time_$n.txt" env OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS \
    mpirun -q --bind-to none --oversubscribe -np "$RANKS" "$BUILD/saepipe-stats" --job "$OUT/stats_$n.toml" >"$OUT/stats_$n.log" 2>&1
  read -r wall rss_kb < "$OUT/time_$n.txt"
  results+="{\"tokens\": $n, \"wall_s\": $wall, \"peak_rss_mib\": $((rss_kb / 1024)), \"tokens_per_s\": $(/usr/bin/python3 -c "print(round($n / $wall))")},"
done
results="${results%,}]"
/usr/bin/python3 - "$results" "$torch_ref" "$D" "$F" "$K" "$RANKS" "$THREADS" "$OUT/stats_bench.json" <<'P'
import json, sys
rows, ref, d, f, k, ranks, threads, path = json.loads(sys.argv[1]), json.loads(sys.argv[2]), *sys.argv[3:9]
json.dump({"d_model": int(d), "d_sae": int(f), "k": int(k), "ranks": int(ranks), "threads": int(threads),
           "runs": rows, "torch_encode": ref}, open(path, "w"), indent=2)
print(f"stats stage, d {d}, d_sae {f}, k {k}, {ranks} rank(s), {threads} threads; two passes, the second over the first pass's codes")
print("| held-out tokens | wall s | tokens/s | peak RSS MiB | torch encode+topk+counts, one pass, tokens/s | ratio |")
print("|---:|---:|---:|---:|---:|---:|")
for r in rows:
    print(f"| {r['tokens']} | {r['wall_s']:.1f} | {r['tokens_per_s']} | {r['peak_rss_mib']} | {ref['tokens_per_s']:.0f} | {r['tokens_per_s'] / ref['tokens_per_s']:.2f} |")
P
