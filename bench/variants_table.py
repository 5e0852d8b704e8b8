#!/usr/bin/env python3
"""The variant table on a hierarchical toy store: every architecture trained from one pass over
the data (one [train] plus [[train.sweep]] entries, same d_sae, k and n_tokens, everything else the
resolved defaults), then per model MMCS, FVU, L0 and dead fraction from the stats stage on the
held-out tokens, and feature absorption measured here in NumPy on fresh tokens of the store's own
generator (tests/python/synthetic_reference.py, which knows every token's true codes).

Absorption (after Chanin et al. 2024, "A is for Absorption"): for each parent feature p of the
hierarchy (synthetic.hpp: a child fires only with its parent), l_p is the latent whose decoder row
has the highest cosine with p's direction;
  recall_alone = share of the tokens with p active and none of its children on which l_p fires,
  recall_child = the same share over the tokens with p and one of its children active,
  absorption_p = clamp(1 - recall_child / recall_alone, 0, 1) (1 when recall_alone = 0),
over the parents with at least 20 tokens of each kind; absorption = the mean of absorption_p, and
absorbed = the share of parents with absorption_p >= 0.5. A dictionary that keeps a latent for the
parent, firing whatever its children do, scores 0; one whose children's latents have swallowed the
parent's direction (the parent's latent silent when a child fires) scores 1.

  python3 bench/variants_table.py [--build build] [--out /tmp/saepipe_variants] [--seed 2024]
      [--tokens 1000000] [--archs topk,batchtopk,matryoshka,relu,jumprelu] [--threads 1] [--lr 0]
      [--child-probability 0.5]
"""
import argparse
import json
import os
import subprocess
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))
import synthetic_reference as ref  # noqa: E402
from absorption import absorption  # noqa: E402

D, G, CHILDREN, CHILD_P, MEAN_ACTIVE, D_SAE, K = 64, 256, 3, 0.5, 5.0, 512, 5
STORE_TOKENS = 262144 + 32768


def run(cmd, log, env):
    with open(log, "w") as f:
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed (exit {r.returncode}); see {log}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--out", default="/tmp/saepipe_variants")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--tokens", type=int, default=1000000)
    ap.add_argument("--archs", default="topk,batchtopk,matryoshka,relu,jumprelu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--child-probability", type=float, default=CHILD_P,
                    help="harvest.synthetic.child_probability (a parent alone is rarer as it grows)")
    ap.add_argument("--child-coefficient", default="own", choices=["own", "parent"],
                    help="harvest.synthetic.child_coefficient (parent: a child moves with its parent)")
    ap.add_argument("--k", type=int, default=K, help="train.k of every model")
    ap.add_argument("--d-sae", type=int, default=D_SAE)
    ap.add_argument("--features", type=int, default=G)
    ap.add_argument("--children", type=int, default=CHILDREN)
    ap.add_argument("--mean-active", type=float, default=MEAN_ACTIVE)
    ap.add_argument("--lr", type=float, default=0.0, help="train.lr for every model (0: the default rule)")
    a = ap.parse_args()
    saepipe = os.path.join(os.path.realpath(a.build), "saepipe")
    archs = a.archs.split(",")
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads))
    os.makedirs(a.out, exist_ok=True)
    run_dir = os.path.join(a.out, "variants")
    job = f"""[run]
name = "variants"
dir = "{run_dir}"
seed = {a.seed}
device = "cpu"
[harvest]
source = "synthetic"
n_tokens = {STORE_TOKENS}
context = 128
shard_tokens = 65536
[harvest.synthetic]
d_model = {D}
n_features = {a.features}
mean_active = {a.mean_active}
decay = 0.99
children = {a.children}
child_probability = {a.child_probability}
child_coefficient = "{a.child_coefficient}"
seed = {a.seed}
[train]
architecture = "{archs[0]}"
d_sae = {a.d_sae}
k = {a.k}
n_tokens = {a.tokens}
heldout_fraction = 0.1
"""
    if a.lr > 0:
        job += f"lr = {a.lr}\n"
    for arch in archs[1:]:
        job += f'[[train.sweep]]\nname = "{arch}"\narchitecture = "{arch}"\n'
    path = os.path.join(a.out, "variants.toml")
    open(path, "w").write(job)
    print(f"store: d_in {D}, {a.features} true features ({a.features // (a.children + 1)} parents x {a.children} children, "
          f"child_probability {a.child_probability}, child_coefficient {a.child_coefficient}), mean active {a.mean_active}, "
          f"seed {a.seed}; d_sae {a.d_sae}, k {a.k}, "
          f"{a.tokens} training tokens", flush=True)
    run([saepipe, "run", path, "--only", "harvest,train"], os.path.join(a.out, "train.log"), env)
    src = json.load(open(os.path.join(run_dir, "activations", "manifest.json")))["source"]
    gen = ref.Synthetic(src, 1)
    rows = []
    for arch in archs:
        sae = os.path.join(run_dir, "sae", "sae.h5") if arch == archs[0] else os.path.join(run_dir, "sae", "sweep", arch, "sae.h5")
        name = f"stats_{arch}"
        sj = os.path.join(a.out, name + ".toml")
        open(sj, "w").write(f"""[run]
name = "{name}"
dir = "{os.path.join(a.out, name)}"
device = "cpu"
[stats]
activations = "{os.path.join(run_dir, 'activations')}"
sae = "{sae}"
n_tokens = 0
top_examples = 4
interval_bins = 0
""")
        run([saepipe, "run", sj, "--only", "stats"], os.path.join(a.out, name + ".log"), env)
        s = json.load(open(os.path.join(a.out, name, "stats", "summary.json")))
        with h5py.File(sae, "r") as f:
            W = {n: f[n][...].astype(np.float64) for n in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold")}
        ab, absorbed, measured, P = absorption(gen, W, arch, a.k, STORE_TOKENS + 1000, 60000)
        rows.append({"architecture": arch, "mmcs": s["mmcs"], "fvu": s["fvu"], "l0": s["l0"],
                     "dead_fraction": s["dead_fraction"], "absorption": ab, "absorbed_fraction": absorbed,
                     "parents_measured": measured, "parents": P})
        r = rows[-1]
        print(f"  {arch:10s} mmcs {r['mmcs']:.4f}  fvu {r['fvu']:.4f}  l0 {r['l0']:.2f}  dead {r['dead_fraction']:.3f}  "
              f"absorption {ab:.3f} (absorbed {absorbed:.2f} of {measured}/{P} parents)", flush=True)
    json.dump(rows, open(os.path.join(a.out, "variants.json"), "w"), indent=1)
    print("\n| variant | MMCS | FVU | L0 | dead | absorption | parents absorbed |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['architecture']} | {r['mmcs']:.4f} | {r['fvu']:.4f} | {r['l0']:.2f} | {r['dead_fraction']:.3f} | "
              f"{r['absorption']:.3f} | {r['absorbed_fraction']:.2f} ({r['parents_measured']}/{r['parents']}) |")


if __name__ == "__main__":
    main()
