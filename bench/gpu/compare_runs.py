#!/usr/bin/env python3
"""Compares two saepipe runs' outputs with h5py, independently of saepipe's own code: what
bench/gpu/run_all.sh uses to check run.device = "cuda" against "cpu" (and 2 ranks against 1).
Prints one line per comparison; exits 1 when any is out of tolerance.

  compare_runs.py store A B [--tol T]   activations.h5: tokens identical; every hook's activations
                                        identical (T = 0) or within T of |b| + rms(b)
  compare_runs.py sae A B [--tol T]     sae.h5: every tensor within T of the tensor's largest |b|
  compare_runs.py stats A B [--tol T]   features.h5: integer datasets identical, float ones within
                                        T of the largest |b|; summary.json's numbers within T
                                        (relative); examples.h5 integer datasets identical

A and B are a store directory, an sae.h5, or a stats directory. Run it on two CPU runs to check
the checker (they agree exactly).
"""
import argparse
import json
import math
import os
import sys

import h5py
import numpy as np


def rel_to_max(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    if a.shape != b.shape:
        return math.inf
    if a.size == 0:
        return 0.0
    if np.isnan(a).any() != np.isnan(b).any() or not np.array_equal(np.isnan(a), np.isnan(b)):
        return math.inf
    a, b = np.nan_to_num(a), np.nan_to_num(b)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))


def datasets(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[...]) if isinstance(o, h5py.Dataset) else None)
    return out


def compare_store(a, b, tol):
    fa, fb = datasets(os.path.join(a, "activations.h5")), datasets(os.path.join(b, "activations.h5"))
    ok = sorted(fa) == sorted(fb)
    if not ok:
        print(f"store: datasets differ: {sorted(fa)} vs {sorted(fb)}")
    for name in sorted(set(fa) & set(fb)):
        x, y = fa[name], fb[name]
        if not name.startswith("activations/") or tol == 0:
            same = x.shape == y.shape and np.array_equal(x, y)
            print(f"store {name}: {'identical' if same else 'DIFFERENT'}")
            ok &= same
            continue
        y64, x64 = y.astype(np.float64), x.astype(np.float64)
        e = float(np.max(np.abs(x64 - y64) / (np.abs(y64) + np.sqrt(np.mean(y64 * y64))))) if x.shape == y.shape else math.inf
        print(f"store {name}: max |a - b| / (|b| + rms b) = {e:.2e} (tolerance {tol:g})")
        ok &= e <= tol
    return ok


def compare_sae(a, b, tol):
    fa, fb = datasets(a), datasets(b)
    ok = sorted(fa) == sorted(fb) and len(fa) > 0
    worst, where = 0.0, ""
    for name in sorted(set(fa) & set(fb)):
        e = rel_to_max(fa[name], fb[name])
        if e >= worst:
            worst, where = e, name
    print(f"sae {a}: max |a - b| / max |b| = {worst:.2e} ({where}; tolerance {tol:g})")
    return ok and worst <= tol


def compare_stats(a, b, tol):
    ok = True
    for file in ("features.h5", "examples.h5"):
        pa, pb = os.path.join(a, file), os.path.join(b, file)
        if not os.path.exists(pb):
            continue
        fa, fb = datasets(pa), datasets(pb)
        if sorted(fa) != sorted(fb):
            print(f"stats {file}: datasets differ")
            ok = False
        for name in sorted(set(fa) & set(fb)):
            x, y = fa[name], fb[name]
            if x.dtype.kind in "iub":
                n = int(np.sum(x != y)) if x.shape == y.shape else -1
                print(f"stats {file}/{name}: {'identical' if n == 0 else f'DIFFERENT ({n} entries)'}")
                ok &= n == 0
            elif file == "features.h5":  # examples.h5's floats follow its (identical) indices
                e = rel_to_max(x, y)
                print(f"stats {file}/{name}: {e:.2e}")
                ok &= e <= tol
    sa, sb = (json.load(open(os.path.join(d, "summary.json"))) for d in (a, b))
    for k in sorted(sb):
        if isinstance(sb[k], float) or (isinstance(sb[k], int) and not isinstance(sb[k], bool)):
            x, y = float(sa.get(k, math.nan)), float(sb[k])
            e = abs(x - y) / max(abs(y), 1e-30) if x != y else 0.0
            print(f"summary {k}: {x:.8g} vs {y:.8g} ({e:.1e})")
            ok &= e <= tol
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["store", "sae", "stats"])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--tol", type=float, default=0.0)
    args = ap.parse_args()
    ok = {"store": compare_store, "sae": compare_sae, "stats": compare_stats}[args.what](args.a, args.b, args.tol)
    print(f"{args.what}: {'ok' if ok else 'OUT OF TOLERANCE'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
