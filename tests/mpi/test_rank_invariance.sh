#!/usr/bin/env bash
# The store is the same for 1 and 3 harvest ranks; for every architecture the trained
# weights are the same for 1, 2, 3 and 4 train ranks (topk also for 1 rank of 2 threads) (matryoshka, gated: 1 and 3) (global batch 1000: uneven slices for
# 3 and 4 ranks; batchtopk's threshold is found across ranks). A global batch smaller than
# the rank count (a rank with no rows) must not hang. Transcoders and crosscoders on 1 and 3 ranks.
source "$(dirname "$(dirname "$0")")/e2e/lib.sh" "$1"
job() {  # job NAME RUN_DIR [extra train lines]
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
shuffle_tokens = 8192
log_every = 10
auxk = 32
dead_tokens = 4000
${3:-}
T
}
base='k = 4
batch_tokens = 1000
n_tokens = 60000
lr = 0.001'
job h1 store1; job h3 store3
mpirun_np 1 "$BIN/saepipe-harvest" --job h1.toml >/dev/null 2>&1 || fail "harvest 1 rank"
mpirun_np 3 "$BIN/saepipe-harvest" --job h3.toml >/dev/null 2>&1 || fail "harvest 3 ranks"
$PY - <<'P' && pass "store identical for 1 and 3 harvest ranks" || fail "stores differ"
import h5py, numpy as np, sys
a = h5py.File("store1/activations/activations.h5")["activations/blocks.0.hook_resid_post"][...]
b = h5py.File("store3/activations/activations.h5")["activations/blocks.0.hook_resid_post"][...]
sys.exit(0 if a.shape == (40960, 32) and np.array_equal(a, b) else 1)
P
# matryoshka (batchtopk's selection, its own loss) on 1 and 3 ranks only: uneven slices and the
# threshold across ranks at a third of the cost; gated (two encoder paths, r_mag and b_mag) the same.
for arch in topk batchtopk relu jumprelu matryoshka gated; do
  extra="$base
architecture = \"$arch\"
matryoshka_prefixes = [16, 48]
l1_coef = 0.3
l0_coef = 0.01"
  # relu, jumprelu and gated with a sparsity target: the coefficient's factor follows the batch
  # L0 summed over the ranks, so it too must not depend on the rank count.
  case $arch in relu|jumprelu|gated) extra="$extra
target_l0 = 3" ;; esac
  ranks="1 2 3 4"; case $arch in matryoshka|gated) ranks="1 3";; esac
  for n in $ranks; do
    job t$arch$n run$arch$n "$extra"
    if mpirun_np $n "$BIN/saepipe-train" --job t$arch$n.toml >train$arch$n.log 2>&1; then :; else fail "train $arch $n ranks"; cat train$arch$n.log; fi
  done
  ARCH=$arch RANKS="$ranks" $PY - <<'P' && pass "$arch: weights of $ranks ranks equal 1 rank within 1e-5 relative" || fail "$arch: weights depend on the rank count"
import h5py, numpy as np, os, sys
arch = os.environ["ARCH"]
ok = True
ref = h5py.File(f"run{arch}1/sae/sae.h5")
for n in [int(r) for r in os.environ["RANKS"].split()[1:]]:
    f = h5py.File(f"run{arch}{n}/sae/sae.h5")
    for k in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold") + (("r_mag", "b_mag") if arch == "gated" else ()):
        a, b = ref[k][...], f[k][...]
        rel = np.abs(a - b).max() / max(np.abs(a).max(), 1e-30)
        print(f"{arch} ranks {n} {k}: max relative difference {rel:.3g}")
        ok &= bool(rel <= 1e-5)
sys.exit(0 if ok else 1)
P
done
# Nor on the threads per rank, bit for bit: topk on 1 rank with 2 OpenMP threads equals 2 ranks of
# 1 thread (the train stage's encoder blocks are single-threaded BLAS calls spread over the OpenMP
# threads; OpenBLAS's own threads rounded differently).
sed 's/runtopk1/runtopk1t2/' ttopk1.toml > ttopk1t2.toml
OMP_NUM_THREADS=2 mpirun_np 1 "$BIN/saepipe-train" --job ttopk1t2.toml >train1t2.log 2>&1 || { fail "train topk 1 rank 2 threads"; cat train1t2.log; }
$PY - <<'P' && pass "topk: 1 rank x 2 threads equals 2 ranks x 1 thread bit for bit" || fail "topk: weights depend on the threads per rank"
import h5py, numpy as np, sys
a, b = h5py.File("runtopk1t2/sae/sae.h5"), h5py.File("runtopk2/sae/sae.h5")
sys.exit(0 if all(np.array_equal(a[k][...], b[k][...]) for k in ("W_enc", "W_dec", "b_enc", "b_dec")) else 1)
P
# batchtopk with a global batch of 3 over 4 ranks: rank 3 has no rows but joins the threshold.
for n in 1 4; do
  job tiny$n runtiny$n 'architecture = "batchtopk"
k = 2
batch_tokens = 3
n_tokens = 60'
  mpirun_np $n "$BIN/saepipe-train" --job tiny$n.toml >tiny$n.log 2>&1 || { fail "batchtopk batch 3 on $n ranks (rc $?)"; cat tiny$n.log; }
done
$PY - <<'P' && pass "batchtopk: a rank without rows neither hangs nor changes the weights" || fail "batchtopk tiny batch differs"
import h5py, numpy as np, sys
a, b = h5py.File("runtiny1/sae/sae.h5"), h5py.File("runtiny4/sae/sae.h5")
sys.exit(0 if all(np.allclose(a[k][...], b[k][...], rtol=1e-5, atol=1e-7) for k in ("W_enc", "W_dec", "b_enc", "b_dec")) else 1)
P
# Transcoders (batchtopk with the skip: a target batch, W_skip) and crosscoders (relu: the
# per-layer L1) read several hooks of one store, each through its own shuffled stream: 1 and 3 ranks.
hooks='["blocks.0.hook_resid_post", "blocks.1.hook_resid_post", "blocks.2.hook_resid_post"]'
cat > hv.toml <<T
[run]
name = "invv"
dir = "storev"
seed = 3
[harvest]
hooks = $hooks
n_tokens = 40960
context = 64
shard_tokens = 8192
[harvest.synthetic]
d_model = 16
n_features = 32
mean_active = 3.0
hook_similarity = 0.5
hook_linear = 0.3
hook_noise = 0.01
T
mpirun_np 2 "$BIN/saepipe-harvest" --job hv.toml >hv.log 2>&1 || { fail "harvest of the 3-hook store"; cat hv.log; }
for v in transcoder crosscoder; do
  if [ $v = transcoder ]; then extra='architecture = "batchtopk"
hook = "blocks.0.hook_resid_post"
target_hook = "blocks.1.hook_resid_post"
skip = true'
  else extra="architecture = \"relu\"
l1_coef = 0.3
hooks = $hooks"; fi
  for n in 1 3; do
    job v$v$n run$v$n "$base
$extra"
    sed -i 's|store1/activations|storev/activations|; s|^d_sae = 128|d_sae = 64|' v$v$n.toml
    mpirun_np $n "$BIN/saepipe-train" --job v$v$n.toml >v$v$n.log 2>&1 || { fail "train $v $n ranks"; cat v$v$n.log; }
  done
  V=$v $PY - <<'P' && pass "$v: weights of 3 ranks equal 1 rank within 1e-5 relative" || fail "$v: weights depend on the rank count"
import h5py, numpy as np, os, sys
v = os.environ["V"]
a, b = h5py.File(f"run{v}1/sae/sae.h5"), h5py.File(f"run{v}3/sae/sae.h5")
ok = True
for k in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold") + (("W_skip",) if v == "transcoder" else ()):
    x, y = a[k][...], b[k][...]
    rel = np.abs(x - y).max() / max(np.abs(x).max(), 1e-30)
    print(f"{v} ranks 3 {k}: max relative difference {rel:.3g} (shape {x.shape})")
    ok &= bool(rel <= 1e-5)
sys.exit(0 if ok else 1)
P
done
finish
