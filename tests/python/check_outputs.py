"""Independent check of a finished saepipe run with h5py and NumPy (Debian's
/usr/bin/python3): the activation store against a NumPy reimplementation of the synthetic
source, the VDS against the shards, the checkpoint's shapes and constraints, and the stats
summary against a NumPy recomputation of the SAE on the held-out tokens.
Usage: check_outputs.py RUN_DIR"""
import json
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import synthetic_reference as ref  # noqa: E402

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def main(run_dir):
    store = os.path.join(run_dir, "activations")
    man = json.load(open(os.path.join(store, "manifest.json")))
    check(man["schema"] == "saepipe.activations" and man["version"] == 1, "manifest schema/version")
    hook = man["hooks"][0]
    D, N, ctx = man["d_model"], man["n_tokens"], man["context"]
    src = man["source"]
    feats = ref.features(src["seed"], src["n_features"], D)
    probs = ref.probabilities(src["n_features"], src["decay"], src["mean_active"])

    # Ground truth equals the independent reimplementation.
    with h5py.File(os.path.join(store, "ground_truth.h5"), "r") as f:
        gt = f["features"][...]
    check(gt.shape == (src["n_features"], D), f"ground truth shape {gt.shape}")
    check(np.allclose(gt, feats, atol=1e-6), "ground truth features differ from the NumPy reference")

    # Every shard: shapes, dtypes, contiguous sequences, values equal to the reference.
    covered = 0
    for sh in man["shards"]:
        with h5py.File(os.path.join(store, sh["path"]), "r") as f:
            a = f["activations"][hook]
            n = sh["n_tokens"]
            check(a.shape == (n, D), f"{sh['path']}: shape {a.shape}")
            check(a.fletcher32, f"{sh['path']}: no Fletcher32 filter")
            x = a[...].astype(np.float64)
            first = sh["first_token"]
            # compare a sample of rows (the whole store is large)
            rows = np.unique(np.linspace(0, n - 1, 257).astype(np.int64))
            want, dom = ref.tokens(src["seed"], first, n, feats, probs)
            tol = {"float32": 1e-5, "float16": 2e-3, "bfloat16": 1.6e-2}[man["dtype"]]
            err = np.abs(x[rows] - want[rows]).max()
            scale = max(1.0, np.abs(want[rows]).max())
            check(err <= tol * scale, f"{sh['path']}: activations differ from the NumPy reference by {err}")
            check(np.array_equal(f["tokens"][...], dom.astype(np.int32)), f"{sh['path']}: tokens (dominant feature) differ")
            seq = f["sequence"][...]
            pos = f["position"][...]
            t = np.arange(first, first + n)
            check(np.array_equal(seq, t // ctx) and np.array_equal(pos, t % ctx), f"{sh['path']}: sequence/position")
            covered += n
    check(covered == N, f"shards cover {covered} of {N} tokens")

    # The VDS reads as one array equal to the shards.
    with h5py.File(os.path.join(store, "activations.h5"), "r") as f:
        v = f["activations"][hook]
        check(v.shape == (N, D), f"VDS shape {v.shape}")
        with h5py.File(os.path.join(store, man["shards"][-1]["path"]), "r") as g:
            last = g["activations"][hook][...]
        check(np.array_equal(v[N - len(last):], last), "VDS rows differ from the last shard")

    # Checkpoint: contract shapes, unit decoder rows, attributes.
    with h5py.File(os.path.join(run_dir, "sae", "sae.h5"), "r") as f:
        W_enc, b_enc, W_dec, b_dec = (f[k][...].astype(np.float64) for k in ("W_enc", "b_enc", "W_dec", "b_dec"))
        attrs = dict(f.attrs)
    F = W_dec.shape[0]
    check(W_enc.shape == (D, F) and b_enc.shape == (F,) and W_dec.shape == (F, D) and b_dec.shape == (D,),
          "checkpoint shapes")
    check(np.allclose(np.linalg.norm(W_dec, axis=1), 1.0, atol=1e-4), "decoder rows are not unit norm")
    k = int(attrs["k"])
    check(attrs["schema"] in (b"saepipe.sae", "saepipe.sae") and int(attrs["d_sae"]) == F, "checkpoint attributes")

    # Stats: recompute the SAE on the held-out tokens with NumPy.
    first, count = int(attrs["heldout_first_token"]), int(attrs["heldout_n_tokens"])
    summary = json.load(open(os.path.join(run_dir, "stats", "summary.json")))
    with h5py.File(os.path.join(store, "activations.h5"), "r") as f:
        x = f["activations"][hook][first:first + count].astype(np.float64)
    pre = (x - b_dec) @ W_enc + b_enc
    top = np.argpartition(-pre, k - 1, axis=1)[:, :k]
    z = np.zeros_like(pre)
    np.put_along_axis(z, top, np.maximum(np.take_along_axis(pre, top, axis=1), 0), axis=1)
    xh = z @ W_dec + b_dec
    sse = ((xh - x) ** 2).sum()
    fvu = sse / ((x - x.mean(0)) ** 2).sum()
    l0 = (z > 0).sum(1).mean()
    check(summary["n_tokens"] == count, "summary n_tokens")
    check(abs(summary["fvu"] - fvu) <= 1e-3 * max(fvu, 1e-3), f"fvu {summary['fvu']} vs NumPy {fvu}")
    check(abs(summary["l0"] - l0) <= 1e-3 * l0, f"l0 {summary['l0']} vs NumPy {l0}")
    dec = W_dec / np.linalg.norm(W_dec, axis=1, keepdims=True)
    mmcs = (feats @ dec.T).max(1).mean()
    check(abs(summary["mmcs"] - mmcs) <= 1e-4, f"mmcs {summary['mmcs']} vs NumPy {mmcs}")
    with h5py.File(os.path.join(run_dir, "stats", "features.h5"), "r") as f:
        fire = f["fire_count"][...]
    # float32 (C++) and float64 (here) may pick a different k-th latent on a near tie
    want = (z > 0).sum(0)
    diff = np.abs(fire - want).sum()
    check(diff <= max(2, 1e-3 * want.sum()), f"fire counts differ from the NumPy recomputation by {diff}")
    print(f"checked {run_dir}: fvu {fvu:.4f} l0 {l0:.2f} mmcs {mmcs:.4f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
