"""The one batch every implementation's train step trains on: float32 [batch, d], raw.
Sparse superposition, so a TopK SAE has something to learn: 2*d random unit directions,
each active with probability 8 / (2*d) per token (8 active on average) with a coefficient
uniform in [0, 1], plus Gaussian noise of standard deviation 0.01 per component.

  make_batch.py OUT --d 768 --batch 4096 [--seed 0]
"""
import argparse

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--d", type=int, required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    n_feat = 2 * a.d
    dirs = rng.standard_normal((n_feat, a.d))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    active = rng.random((a.batch, n_feat)) < 8.0 / n_feat
    coef = np.where(active, rng.random((a.batch, n_feat)), 0.0)
    x = coef @ dirs + 0.01 * rng.standard_normal((a.batch, a.d))
    x.astype("<f4").tofile(a.out)


if __name__ == "__main__":
    main()
