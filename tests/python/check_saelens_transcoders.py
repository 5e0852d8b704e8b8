#!/usr/bin/env python3
"""Loads saepipe's saelens/ exports of transcoders with the real SAELens (the venv of
scripts/python_env.sh) and checks them against sae.h5 and the store:

  check_saelens_transcoders.py STORE_DIR SAE_DIR...   (each SAE_DIR holds sae.h5 and saelens/)

SAE.load_from_disk gives the class of the architecture (relu -> Transcoder, or SkipTranscoder
with W_skip; jumprelu -> JumpReLUTranscoder / JumpReLUSkipTranscoder) with sae.h5's tensors bit
for bit; cfg.json is what SAELens' own save_model writes for the loaded transcoder; the metadata
keeps hook_name and hook_name_out; SAELens' forward on input-hook rows agrees with a float64
NumPy forward of sae.h5 (encoder on x as it is, decoder + W_skip x + b_dec). Exit 1 on a failure.
"""
import json
import sys
import tempfile
import warnings

import h5py
import numpy as np
import torch

warnings.filterwarnings("ignore")
from sae_lens import SAE  # noqa: E402

FAILED = []


def check(ok, what):
    print(("ok: " if ok else "FAIL: ") + what)
    if not ok:
        FAILED.append(what)


def attr(f, k):
    v = f.attrs[k]
    return v.decode() if isinstance(v, bytes) else v


def main():
    store, dirs = sys.argv[1], sys.argv[2:]
    acts = h5py.File(f"{store}/activations.h5", "r")
    for d in dirs:
        f = h5py.File(f"{d}/sae.h5", "r")
        arch, hook, out = attr(f, "architecture"), attr(f, "hook"), attr(f, "target_hook")
        W = {n: f[n][...].astype(np.float64) for n in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold", "W_skip") if n in f}
        skip = "W_skip" in W
        want = ("JumpReLU" if arch != "relu" else "") + ("SkipTranscoder" if skip else "Transcoder")
        sae = SAE.load_from_disk(f"{d}/saelens", device="cpu")
        check(type(sae).__name__ == want, f"{arch}{' skip' if skip else ''}: load_from_disk gives {type(sae).__name__} (want {want})")
        names = [n for n in ("W_enc", "b_enc", "W_dec", "b_dec", "W_skip") if n in W] + (["threshold"] if arch != "relu" else [])
        same = all(np.array_equal(getattr(sae, n).detach().numpy(), f[n][...]) for n in names)
        check(same, f"{want}: SAELens holds sae.h5's {', '.join(names)} bit for bit")
        ours = json.load(open(f"{d}/saelens/cfg.json"))
        with tempfile.TemporaryDirectory() as t:
            sae.save_model(t)
            theirs = json.load(open(f"{t}/cfg.json"))
        diff = sorted(set(ours) ^ set(theirs)) + sorted(n for n in set(ours) & set(theirs) if ours[n] != theirs[n])
        check(ours == theirs, f"{want}: cfg.json equals SAELens' save_model output" + (f" (differs in {diff})" if diff else ""))
        m = sae.cfg.metadata
        check(m["hook_name"] == hook and m["hook_name_out"] == out, f"{want}: metadata hook_name {m['hook_name']} -> hook_name_out {m['hook_name_out']}")
        x = acts[f"activations/{hook}"][:2048].astype(np.float32)
        pre = x.astype(np.float64) @ W["W_enc"] + W["b_enc"]
        z = np.maximum(pre, 0.0) if arch == "relu" else np.where(pre > W["threshold"], pre, 0.0)
        y = z @ W["W_dec"] + W["b_dec"] + (x.astype(np.float64) @ W["W_skip"].T if skip else 0.0)
        with torch.no_grad():
            y_l = sae(torch.from_numpy(x)).numpy().astype(np.float64)
            z_l = sae.encode(torch.from_numpy(x)).numpy().astype(np.float64)
        err = np.abs(y_l - y).max() / np.abs(y).max()
        active = np.mean((z_l > 0) == (z > 0))
        check(err < 1e-4 and active > 0.9999 and (z > 0).sum(1).mean() > 0,
              f"{want}: SAELens forward vs NumPy on sae.h5 over {len(x)} rows: max rel error {err:.2e}, active sets agree {active:.6f}")
    print(f"{len(FAILED)} checks failed" if FAILED else "all SAELens transcoder checks passed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
