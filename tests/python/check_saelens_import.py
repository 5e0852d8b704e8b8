#!/usr/bin/env python3
"""Checks saepipe's stats of SAEs that SAELens saved (`[stats] sae = "<saelens dir>"`) against
the real SAELens evaluating the same SAE on the same store rows:

  check_saelens_import.py STORE_DIR SAELENS_DIR STATS_DIR [SAELENS_DIR STATS_DIR ...]

For each pair: summary.json's n_tokens, l0, mse and fvu, and features.h5's per-latent fire
counts and max activations, against SAE.load_from_disk(dir).encode/decode over the rows the
summary says were evaluated (float64 sums). Exit 1 on a failed check.
"""
import json
import sys
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


def compare(store, d, stats):
    s = json.load(open(f"{stats}/summary.json"))
    f = h5py.File(f"{stats}/features.h5", "r")
    sae = SAE.load_from_disk(d, device="cpu")
    name = d.rstrip("/").split("/")[-1]
    hook = sae.cfg.metadata.hook_name
    check(s["hook"] == hook and s["d_sae"] == sae.cfg.d_sae and s["sae"].rstrip("/") == d.rstrip("/"),
          f"{name}: summary names the SAELens directory, its hook {hook} and d_sae {sae.cfg.d_sae}")
    first, n = s["first_token"], s["n_tokens"]
    x = torch.from_numpy(h5py.File(f"{store}/activations.h5", "r")[f"activations/{hook}"][first:first + n].astype(np.float32))
    check(n >= 1024, f"{name}: {n} tokens evaluated")
    with torch.no_grad():
        z = sae.encode(x)
        xh = sae.decode(z).double()
    z = z.double().numpy()
    xd = x.double().numpy()
    err = ((xh.numpy() - xd) ** 2).sum()
    fvu = err / ((xd - xd.mean(0)) ** 2).sum()
    l0 = (z > 0).sum(1).mean()
    mse = err / xd.size
    fires = (z > 0).sum(0)
    mx = z.max(0)
    print(f"{name}: SAELens l0 {l0:.4f} fvu {fvu:.6f} mse {mse:.6g}; saepipe l0 {s['l0']:.4f} fvu {s['fvu']:.6f} mse {s['mse']:.6g}")
    check(l0 > 0 and abs(s["l0"] - l0) <= 1e-3 * l0, f"{name}: l0 {s['l0']:.4f} vs SAELens {l0:.4f}")
    check(abs(s["fvu"] - fvu) <= 1e-4 * fvu + 1e-7, f"{name}: fvu {s['fvu']:.6f} vs SAELens {fvu:.6f}")
    check(abs(s["mse"] - mse) <= 1e-4 * mse + 1e-12, f"{name}: mse {s['mse']:.6g} vs SAELens {mse:.6g}")
    ours = f["fire_count"][...]
    same = np.mean(ours == fires)
    check(same >= 0.97 and np.abs(ours - fires).sum() <= 1e-3 * fires.sum() + 2,
          f"{name}: fire counts of {len(fires)} latents agree for {same:.3f} of them ({np.abs(ours - fires).sum()} firings differ of {fires.sum()})")
    live = fires > 0
    rel = np.abs(f["max_activation"][...][live] - mx[live]) / np.maximum(mx[live], 1e-12)
    check(live.sum() > 0 and np.median(rel) < 1e-5, f"{name}: max activations of {live.sum()} live latents (median rel error {np.median(rel) if live.any() else 0:.1e})")


def main():
    store, pairs = sys.argv[1], sys.argv[2:]
    check(len(pairs) >= 2 and len(pairs) % 2 == 0, f"{len(pairs) // 2} SAEs to compare")
    for i in range(0, len(pairs), 2):
        compare(store, pairs[i], pairs[i + 1])
    print(f"{len(FAILED)} checks failed" if FAILED else "all SAELens import checks passed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
