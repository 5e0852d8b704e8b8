#!/usr/bin/env bash
# Train outputs for every architecture: sae.h5 in raw units (a NumPy forward on the raw
# store reproduces the training FVU), the saelens/ export read back by hand with NumPy
# (safetensors header + little-endian data, cfg.json fields; SAELens itself loads it in
# test_real_clients.sh), the SVG curves, inspect.
# Bad inputs: unknown hook, k > d_sae, unknown architecture, training state or checkpoint
# of another job — one line each, exit 2, nothing left under a final name.
source "$(dirname "$0")/lib.sh" "$1"
job() {  # job FILE DIR [extra train lines]
  cat > "$1" <<T
[run]
name = "io"
dir = "$2"
[harvest]
n_tokens = 32768
context = 64
shard_tokens = 8192
[harvest.synthetic]
d_model = 16
n_features = 32
mean_active = 2.0
[train]
activations = "store/activations"
d_sae = 64
k = 2
n_tokens = 65536
batch_tokens = 1024
lr = 0.003
l1_coef = 0.3
l0_coef = 0.02
checkpoint_every = 16
${3:-}
T
}
job store.toml store
mpirun_np 2 "$BIN/saepipe-harvest" --job store.toml >harvest.log 2>&1 || fail "harvest"
for arch in topk batchtopk relu jumprelu; do
  job $arch.toml run_$arch "architecture = \"$arch\""
  mpirun_np 2 "$BIN/saepipe-train" --job $arch.toml >$arch.log 2>&1 || { fail "train $arch"; cat $arch.log; continue; }
  ARCH=$arch $PY - <<'P' && pass "$arch: sae.h5 in raw units, saelens export and curves check out" || fail "$arch outputs"
import h5py, json, numpy as np, os, struct, sys, xml.dom.minidom
arch = os.environ["ARCH"]
d = f"run_{arch}/sae"
f = h5py.File(f"{d}/sae.h5")
W = {k: f[k][...] for k in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold")}
# Forward in NumPy on raw activations, by the architecture's inference rule.
x = h5py.File("store/activations/activations.h5")["activations/blocks.0.hook_resid_post"][:8192].astype(np.float64)
pre = (x - W["b_dec"]) @ W["W_enc"] + W["b_enc"]
if arch == "topk":
    kth = -np.sort(-pre, axis=1)[:, 1:2]
    z = np.where((pre >= kth) & (pre > 0), pre, 0)
elif arch == "relu":
    z = np.maximum(pre, 0)
else:
    z = np.where(pre > W["threshold"], pre, 0)
xh = z @ W["W_dec"] + W["b_dec"]
fvu = ((xh - x) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
last = [json.loads(l) for l in open(f"{d}/train_log.jsonl")][-1]
print(f"{arch}: numpy fvu {fvu:.4f}, training log fvu {last['fvu']:.4f}, l0 {(z > 0).sum(1).mean():.2f}")
ok = fvu < 0.9 and abs(fvu - last["fvu"]) < 0.1 + 0.5 * last["fvu"]
# saelens/: safetensors parsed by hand.
raw = open(f"{d}/saelens/sae_weights.safetensors", "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8:8 + n])
base = 8 + n
ok &= base % 8 == 0
want = {"W_enc", "b_enc", "W_dec", "b_dec"} | ({"threshold"} if arch in ("jumprelu", "batchtopk") else set())
ok &= set(header) - {"__metadata__"} == want
for name in want:
    t = header[name]
    a, b = t["data_offsets"]
    arr = np.frombuffer(raw[base + a:base + b], dtype="<f4").reshape(t["shape"])
    ok &= t["dtype"] == "F32" and np.array_equal(arr, W[name])
cfg = json.load(open(f"{d}/saelens/cfg.json"))
expect_arch = {"topk": "topk", "relu": "standard", "jumprelu": "jumprelu", "batchtopk": "jumprelu"}[arch]
ok &= cfg["architecture"] == expect_arch and cfg["d_in"] == 16 and cfg["d_sae"] == 64
ok &= cfg["normalize_activations"] == "none" and cfg["apply_b_dec_to_input"] is True
ok &= cfg["metadata"]["hook_name"] == "blocks.0.hook_resid_post" and (arch != "topk" or cfg["k"] == 2)
ok &= cfg["metadata"]["sae_lens_version"].startswith("6.") and "meta" not in cfg  # v6 layout (tests/e2e/test_real_clients.sh loads it in SAELens)
svg = xml.dom.minidom.parse(f"{d}/train_curves.svg")
ok &= len(svg.getElementsByTagName("polyline")) == 4
ok &= not any(p.endswith(".tmp") for p in os.listdir(d))
print("ok" if ok else "FAILED", header.keys(), cfg["architecture"])
sys.exit(0 if ok else 1)
P
done
# dense_fraction in the log. With an lr too small to move the weights, the one logged window
# (the whole run) counts the latents firing on more than 10% of the training tokens: a NumPy
# TopK forward of the final weights over the store must give the same count, up to the latents
# within 0.005 of the threshold (the window samples the training tokens, NumPy reads them all).
job dense.toml run_dense 'architecture = "topk"
log_every = 1000'
sed -i 's/^k = 2$/k = 8/; s/^lr = 0.003$/lr = 1e-9/' dense.toml
mpirun_np 2 "$BIN/saepipe-train" --job dense.toml >dense.log 2>&1 || { fail "train dense"; cat dense.log; }
$PY - <<'P' && pass "dense_fraction: the log's count matches a NumPy forward" || fail "dense_fraction differs from NumPy"
import h5py, json, numpy as np, sys
f = h5py.File("run_dense/sae/sae.h5")
W_enc, b_enc, b_dec = (f[k][...].astype(np.float64) for k in ("W_enc", "b_enc", "b_dec"))
x = h5py.File("store/activations/activations.h5")["activations/blocks.0.hook_resid_post"][...].astype(np.float64)
pre = (x - b_dec) @ W_enc + b_enc
kth = -np.sort(-pre, axis=1)[:, 7:8]
density = ((pre >= kth) & (pre > 0)).mean(0)
log = [json.loads(l) for l in open("run_dense/sae/train_log.jsonl")]
got = round(log[-1]["dense_fraction"] * 64)
lo, hi = int((density > 0.105).sum()), int((density > 0.095).sum())
print(f"log: {got} of 64 dense; NumPy: {lo} above 0.105, {hi} above 0.095 ({len(log)} log record)")
sys.exit(0 if len(log) == 1 and lo <= got <= hi and lo >= 4 and hi <= 60 else 1)
P
# A sweep: the main topk model and a relu variant from one pass over the data, each
# bit-identical to the same model trained alone.
job sweep.toml run_sweep 'architecture = "topk"
[[train.sweep]]
name = "relu"
architecture = "relu"'
mpirun_np 2 "$BIN/saepipe-train" --job sweep.toml >sweep.log 2>&1 || { fail "sweep"; cat sweep.log; }
$PY - <<'P' && pass "sweep: each model bit-identical to its run alone" || fail "sweep models differ from single runs"
import h5py, numpy as np, sys
ok = True
for a, b in (("run_sweep/sae/sae.h5", "run_topk/sae/sae.h5"), ("run_sweep/sae/sweep/relu/sae.h5", "run_relu/sae/sae.h5")):
    fa, fb = h5py.File(a), h5py.File(b)
    ok &= all(np.array_equal(fa[k][...], fb[k][...]) for k in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold"))
    ok &= fa.attrs["architecture"] == fb.attrs["architecture"]
sys.exit(0 if ok else 1)
P
"$BIN/saepipe" inspect run_jumprelu/sae/sae.h5 >inspect.txt 2>&1 && grep -q "jumprelu" inspect.txt && pass "inspect summarises the checkpoint" || { fail "inspect"; cat inspect.txt; }

job hook.toml run_hook 'hook = "blocks.9.hook_resid_post"'
expect_error 2 "manifest.json: no hook 'blocks.9.hook_resid_post' in this store" -- mpirun_np 2 "$BIN/saepipe-train" --job hook.toml
job bigk.toml run_bigk 'k = 65'
sed -i 's/^k = 2$//' bigk.toml
expect_error 2 "train.k: must be <= train.d_sae" -- mpirun_np 2 "$BIN/saepipe-train" --job bigk.toml
job arch.toml run_arch 'architecture = "matching_pursuit"'
expect_error 2 "arch.toml:[0-9]*: train.architecture: \"matching_pursuit\" is not one of" -- mpirun_np 2 "$BIN/saepipe-train" --job arch.toml
# A training state left by a different job (here: another lr) is not resumed.
mkdir -p run_other/sae && cp run_topk/sae/train_state.h5 run_other/sae/
job other.toml run_other 'architecture = "topk"
lr = 0.001'
sed -i '0,/^lr = 0.003$/{/^lr = 0.003$/d}' other.toml
expect_error 2 "train_state.h5: was written by a different job" -- mpirun_np 2 "$BIN/saepipe-train" --job other.toml
[ ! -e run_other/sae/sae.h5 ] && pass "nothing written as final after the refusal" || fail "sae.h5 written"
cp run_topk/sae/sae.h5 run_other/sae/
expect_error 2 "sae.h5: exists and was trained by a different job" -- mpirun_np 2 "$BIN/saepipe-train" --job other.toml
finish
