#!/usr/bin/env bash
# The store is the same for 1 and 3 harvest ranks; the trained weights are the same for
# 1, 2, 3 and 4 train ranks (global batch 1000: uneven slices for 3 and 4 ranks).
source "$(dirname "$(dirname "$0")")/e2e/lib.sh" "$1"
job() {  # job NAME RUN_DIR
  cat > "$1.toml" <<T
[run]
name = "inv"
dir = "$2"
seed = 3
[harvest]
n_tokens = 40960
context = 64
shard_tokens = 8192
[harvest.synthetic]
d_model = 32
n_features = 64
mean_active = 3.0
[train]
activations = "store1/activations"
d_sae = 128
k = 4
batch_tokens = 1000
n_tokens = 60000
lr = 0.001
auxk = 32
dead_tokens = 4000
shuffle_tokens = 8192
log_every = 10
T
}
job h1 store1; job h3 store3
mpirun_np 1 "$BIN/saepipe-harvest" --job h1.toml >/dev/null 2>&1 || fail "harvest 1 rank"
mpirun_np 3 "$BIN/saepipe-harvest" --job h3.toml >/dev/null 2>&1 || fail "harvest 3 ranks"
$PY - <<'P' && pass "store identical for 1 and 3 harvest ranks" || fail "stores differ"
import h5py, numpy as np, sys
a = h5py.File("store1/activations/activations.h5")["activations/blocks.0.hook_resid_post"][...]
b = h5py.File("store3/activations/activations.h5")["activations/blocks.0.hook_resid_post"][...]
sys.exit(0 if a.shape == (40960, 32) and np.array_equal(a, b) else 1)
P
for n in 1 2 3 4; do
  job t$n run$n
  if mpirun_np $n "$BIN/saepipe-train" --job t$n.toml >train$n.log 2>&1; then pass "train with $n rank(s)"; else fail "train $n ranks"; cat train$n.log; fi
done
$PY - <<'P' && pass "weights of 2, 3, 4 ranks equal 1 rank within 1e-5 relative" || fail "weights depend on the rank count"
import h5py, numpy as np, sys
ok = True
ref = h5py.File("run1/sae/sae.h5")
for n in (2, 3, 4):
    f = h5py.File(f"run{n}/sae/sae.h5")
    for k in ("W_enc", "b_enc", "W_dec", "b_dec"):
        a, b = ref[k][...], f[k][...]
        rel = np.abs(a - b).max() / max(np.abs(a).max(), 1e-30)
        print(f"ranks {n} {k}: max relative difference {rel:.3g}")
        ok &= bool(rel <= 1e-5)
sys.exit(0 if ok else 1)
P
finish
