"""Latent-sharded stats against the unsharded run of the same SAE (tests/mpi/test_latent_shards_stats.sh).

Arguments: ARCH:GRID ...; the run s-ARCH-GRID/stats is compared with s-ARCH-1x1/stats. Integer
datasets (counts, histograms, example rows, context tokens, neighbour and match indices) must be
identical; float datasets within 1e-5 relative (of the dataset's largest magnitude); summary.json's
numbers (and lists of numbers) within 1e-5 relative, its other fields equal. Prints one line per run; exits 1 on any
difference.
"""
import json
import sys

import h5py
import numpy as np

SKIP_SUMMARY = {"resolved_job", "fingerprint"}


def datasets(f):
    names = []
    f.visit(lambda n: names.append(n) if isinstance(f[n], h5py.Dataset) else None)
    return sorted(names)


def compare_h5(ref_path, path, problems):
    ref, got = h5py.File(ref_path, "r"), h5py.File(path, "r")
    names = datasets(ref)
    if names != datasets(got):
        problems.append(f"{path}: datasets {sorted(set(names) ^ set(datasets(got)))} differ")
        return 0.0
    worst = 0.0
    for n in names:
        a, b = ref[n][...], got[n][...]
        if a.shape != b.shape:
            problems.append(f"{path}:{n} shape {b.shape} vs {a.shape}")
        elif a.dtype.kind in "iub":
            if not np.array_equal(a, b):
                bad = np.argwhere(a != b)
                problems.append(f"{path}:{n} differs at {len(bad)} place(s), first {bad[0].tolist()}")
        elif a.dtype.kind == "f":
            if not np.array_equal(np.isfinite(a), np.isfinite(b)):
                problems.append(f"{path}:{n} non-finite values differ")
                continue
            fin = np.isfinite(a)
            if fin.any():
                rel = np.abs(a[fin].astype(np.float64) - b[fin]).max() / max(np.abs(a[fin]).max(), 1e-30)
                worst = max(worst, float(rel))
                if rel > 1e-5:
                    problems.append(f"{path}:{n} relative difference {rel:.3g}")
    return worst


def compare_summary(ref_path, path, problems):
    ref, got = json.load(open(ref_path)), json.load(open(path))
    for k, v in ref.items():
        if k in SKIP_SUMMARY:
            continue
        w = got.get(k)
        if not close(v, w):
            problems.append(f"{path}: {k} = {w} vs {v}")


def close(v, w):
    """Equal, floats within 1e-5 relative (also in lists: a crosscoder's per-layer figures)."""
    if isinstance(v, list) and isinstance(w, list):
        return len(v) == len(w) and all(close(a, b) for a, b in zip(v, w))
    if isinstance(v, float) or isinstance(w, float):
        return isinstance(w, (int, float)) and isinstance(v, (int, float)) and abs(v - w) <= 1e-5 * max(abs(v), 1e-12)
    return v == w


def main(runs):
    problems = []
    for run in runs:
        arch, grid = run.split(":")
        ref, got = f"s-{arch}-1x1/stats", f"s-{arch}-{grid}/stats"
        n = len(problems)
        w = max(compare_h5(f"{ref}/{fn}", f"{got}/{fn}", problems) for fn in ("features.h5", "examples.h5"))
        compare_summary(f"{ref}/summary.json", f"{got}/summary.json", problems)
        s = json.load(open(f"{got}/summary.json"))
        print(f"{arch} {grid}: {'same' if len(problems) == n else 'DIFFERENT'}, floats within {w:.3g} relative; "
              f"l0 {s['l0']:.4f}, fvu {s['fvu']:.4f}, dead {s['dead_fraction']:.3f}")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
