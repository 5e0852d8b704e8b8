#!/usr/bin/env python3
"""Checks interpret/neuronpedia/ against SAEDashboard's own batch classes (sae-dashboard 0.8.0,
installed in the venv of scripts/python_env.sh) and the stats files:

  check_neuronpedia_dashboard.py RUN_DIR

Every batch-<i>.json round-trips through NeuronpediaDashboardBatch(**batch).to_dict()
unchanged (every key, value and nesting), which also means the constructors accept every key;
each batch's feature-extras-<i>.json holds the same latents with features.h5's neighbours and
max activations. Exit 1 on a failed check.
"""
import glob
import json
import os
import re
import sys

import h5py
import numpy as np
from sae_dashboard.neuronpedia.neuronpedia_dashboard import NeuronpediaDashboardBatch

FAILED = []


def check(ok, what):
    print(("ok: " if ok else "FAIL: ") + what)
    if not ok:
        FAILED.append(what)


def first_difference(a, b, path="$"):
    if type(a) is not type(b):
        return f"{path}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}.{k}: only in {'ours' if k in a else 'theirs'}"
            d = first_difference(a[k], b[k], f"{path}.{k}")
            if d:
                return d
    elif isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
    elif a != b:
        return f"{path}: {a!r} vs {b!r}"
    return None


def main():
    run = sys.argv[1]
    d = f"{run}/interpret/neuronpedia"
    num = lambda p: int(re.search(r"(\d+)\.json$", p).group(1))  # noqa: E731
    batches = sorted(glob.glob(f"{d}/batch-*.json"), key=num)
    sidecars = sorted(glob.glob(f"{d}/feature-extras-*.json"), key=num)
    check(len(batches) > 0 and [num(p) for p in batches] == [num(p) for p in sidecars],
          f"{len(batches)} batches, each with its feature-extras sidecar")
    f = h5py.File(f"{run}/stats/features.h5", "r")
    nb, mx = f["neighbour_index"][...], f["max_activation"][...]
    n_feat = n_acts = n_logits = 0
    for bp, sp in zip(batches, sidecars):
        b = json.load(open(bp, encoding="utf-8"))
        rt = NeuronpediaDashboardBatch(**b).to_dict()
        diff = first_difference(b, rt)
        check(diff is None, f"{os.path.basename(bp)}: NeuronpediaDashboardBatch(**batch).to_dict() == batch" + (f" ({diff})" if diff else ""))
        e = json.load(open(sp, encoding="utf-8"))
        check([x["feature_index"] for x in b["features"]] == [x["index"] for x in e["features"]]
              and all(e[k] == b[k] for k in ("model_id", "layer", "sae_set", "sae_id_suffix")),
              f"{os.path.basename(sp)}: the batch's latents, model, layer and set")
        for x in e["features"]:
            i = x["index"]
            want = [int(n) for n in nb[i] if n >= 0]
            if x["topkCosSimIndices"] != want or len(x["topkCosSimValues"]) != len(want) or \
                    not np.isclose(x["maxActApprox"], mx[i], rtol=1e-6, atol=0):
                check(False, f"latent {i}: sidecar {x} vs features.h5 neighbours {want}, max {mx[i]}")
        for x in b["features"]:
            n_feat += 1
            n_acts += len(x["activations"])
            n_logits += len(x["pos_str"])
    # Something was exported: examples and (with a model) logit tokens.
    check(n_feat == f["max_activation"].shape[0] and n_acts > 0 and n_logits > 0,
          f"{n_feat} latents, {n_acts} activation records, {n_logits} positive logit tokens round-tripped")
    print(f"{len(FAILED)} checks failed" if FAILED else "all SAEDashboard checks passed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
