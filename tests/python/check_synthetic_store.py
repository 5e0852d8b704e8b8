"""A synthetic store (any hooks, hierarchy, noise, linear maps, absent features) against the
independent NumPy generator of synthetic_reference.py: ground_truth.h5 (every dataset) and a
sample of rows of every shard and hook, and the token ids (dominant features). Also checks that
the specification does what it says on the reference's own codes: a child is active only with its
parent and with no sibling, marginal frequencies match /probability, the mean number of active
features matches mean_active.
Usage: check_synthetic_store.py STORE_DIR"""
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


def main(store):
    man = json.load(open(os.path.join(store, "manifest.json")))
    src, hooks, D = man["source"], man["hooks"], man["d_model"]
    gen = ref.Synthetic(src, len(hooks))
    G = gen.G

    with h5py.File(os.path.join(store, "ground_truth.h5"), "r") as f:
        check(np.allclose(f["features"][...], gen.feats[0], atol=1e-6), "/features differ from the reference")
        check(np.allclose(f["probability"][...], gen.prob, rtol=1e-12, atol=0), "/probability differs")
        if gen.C > 0:
            check(np.array_equal(f["parent"][...], gen.parent), "/parent differs")
        else:
            check("parent" not in f, "/parent written for a store without hierarchy")
        if len(hooks) > 1:
            for l, h in enumerate(hooks):
                check(np.allclose(f["hook_features"][h][...], gen.feats[l], atol=1e-6), f"/hook_features/{h} differs")
                if l > 0 and gen.lin[l] is not None:
                    check(np.allclose(f["hook_linear"][h][...], gen.lin[l], atol=1e-6), f"/hook_linear/{h} differs")
            absent = src.get("hook_absent", 0.0)
            for l in range(1, len(hooks)):
                gone = (np.abs(gen.feats[l]).sum(1) == 0).mean()
                check(abs(gone - absent) <= 4 * np.sqrt(absent * (1 - absent) / G) + 1e-9,
                      f"hook {l}: {gone:.3f} of the features absent, hook_absent {absent}")
        else:
            check("hook_features" not in f, "/hook_features written for a one-hook store")

    tol = {"float32": 1e-5, "float16": 2e-3, "bfloat16": 1.6e-2}[man["dtype"]]
    rows_checked = 0
    for sh in man["shards"]:
        with h5py.File(os.path.join(store, sh["path"]), "r") as f:
            first, n = sh["first_token"], sh["n_tokens"]
            rows = np.unique(np.linspace(0, n - 1, 97).astype(np.int64))
            want, dom = gen.tokens(first, n)
            for l, h in enumerate(hooks):
                x = f["activations"][h][...].astype(np.float64)
                err = np.abs(x[rows] - want[l][rows]).max()
                scale = max(1.0, np.abs(want[l][rows]).max())
                check(err <= tol * scale, f"{sh['path']} {h}: differs from the reference by {err}")
            check(np.array_equal(f["tokens"][...], dom.astype(np.int32)), f"{sh['path']}: tokens (dominant feature) differ")
            rows_checked += len(rows)

    # The specification's promises, on the reference's own codes (many tokens).
    n = 200000
    active, coef = gen.codes(0, n)
    if gen.C > 0:
        P, C = gen.P, gen.C
        kids = active[:, P:P + P * C].reshape(n, P, C)
        if src.get("child_coefficient", "own") == "parent":
            kc = coef[:, P:P + P * C].reshape(n, P, C).sum(2)
            on = kids.any(2)
            check(np.array_equal(kc[on], coef[:, :P][on]), "a child's coefficient is not its parent's")
        check(not (kids.any(2) & ~active[:, :P]).any(), "a child is active without its parent")
        check(kids.sum(2).max() <= 1, "two children of one parent are active together")
        with_parent = kids.any(2)[active[:, :P]].mean()
        check(abs(with_parent - gen.q) < 0.02, f"P(child | parent) = {with_parent:.3f}, child_probability {gen.q}")
    freq = active.mean(0)
    sd = np.sqrt(gen.prob * (1 - gen.prob) / n)
    check(np.all(np.abs(freq - gen.prob) <= 5 * sd + 1e-4), "marginal frequencies differ from /probability")
    check(abs(active.sum(1).mean() - src["mean_active"]) < 0.05 * src["mean_active"],
          f"mean active {active.sum(1).mean():.3f}, mean_active {src['mean_active']}")
    print(f"checked {store}: {len(hooks)} hook(s), {G} features"
          f"{f', {gen.P} parents x {gen.C} children' if gen.C else ''}, {rows_checked} rows per hook"
          f" - {'FAILED' if failures else 'ok'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
