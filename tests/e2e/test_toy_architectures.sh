#!/usr/bin/env bash
# jobs/toy_architectures.toml as shipped (open issue 4): TopK, BatchTopK, ReLU and JumpReLU
# trained in one pass over the independent-feature toy store, each evaluated on the held-out
# tokens by the stats stage (a stats job per sweep variant, [stats] sae = its sae.h5), each
# must reach MMCS >= 0.99 against the ground truth. The match must also be carried by
# latents that fire on the held-out tokens: a dead latent's decoder row does not count.
# Two ranks (the MMCS are those of 1 rank to 4 digits); about 250 s of CPU in all, 4 minutes
# wall on 2 cores shared with other builds. The correlated store (>= 0.95, measured in the
# job's header) would double that and is not run.
source "$(dirname "$0")/lib.sh" "$1"
unset OMP_NUM_THREADS   # the driver shares the cores between ranks itself

JOB="$SRC/jobs/toy_architectures.toml"
RUN=runs/toy_architectures
start=$SECONDS
if "$BIN/saepipe" run "$JOB" --ranks 2 --only harvest,train,stats >run.log 2>&1; then pass "toy_architectures ran"
else fail "toy_architectures exit $?"; tail -30 run.log; finish; fi
echo "train + main stats wall time: $((SECONDS - start))s"

for v in batchtopk relu jumprelu; do
  cat > stats_$v.toml <<T
[run]
name = "toy_stats_$v"
[stats]
activations = "$RUN/activations"
sae = "$RUN/sae/sweep/$v/sae.h5"
n_tokens = 0
T
  if "$BIN/saepipe" run stats_$v.toml --ranks 2 --only stats >stats_$v.log 2>&1; then :; else fail "stats for $v exit $?"; tail -5 stats_$v.log; fi
done

# name  sae.h5  stats dir
check() {
  $PY - "$1" "$2" "$3" <<'P'
import h5py, json, numpy as np, sys
name, sae, stats = sys.argv[1:4]
s = json.load(open(f"{stats}/summary.json"))
truth = h5py.File("runs/toy_architectures/activations/ground_truth.h5", "r")["features"][...]
W_dec = h5py.File(sae, "r")["W_dec"][...]
live = h5py.File(f"{stats}/features.h5", "r")["fire_count"][...] > 0
dec = W_dec / np.linalg.norm(W_dec, axis=1, keepdims=True)
truth = truth / np.linalg.norm(truth, axis=1, keepdims=True)
mmcs_live = (truth @ dec[live].T).max(1).mean()
print(f"{name:10s} mmcs {s['mmcs']:.4f} (live latents only {mmcs_live:.4f})  fvu {s['fvu']:.4f}  "
      f"l0 {s['l0']:.2f}  dead {s['dead_fraction']:.3f}")
sys.exit(0 if s["mmcs"] >= 0.99 and mmcs_live >= 0.99 else 1)
P
}
check topk "$RUN/sae/sae.h5" "$RUN/stats" && pass "topk: MMCS >= 0.99" || fail "topk: MMCS below 0.99"
for v in batchtopk relu jumprelu; do
  check $v "$RUN/sae/sweep/$v/sae.h5" runs/toy_stats_$v/stats && pass "$v: MMCS >= 0.99" || fail "$v: MMCS below 0.99"
done
echo "total wall time: $((SECONDS - start))s"
finish
