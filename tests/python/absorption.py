"""Feature absorption of an SAE on a hierarchical synthetic store (pipeline/model/synthetic.hpp),
from the true per-token codes of the store's generator (synthetic_reference.py). The measure is
defined in README.md (after Chanin et al. 2024, "A is for Absorption"); used by
bench/variants_table.py and tests/e2e/test_toy_variants.sh.
"""
import numpy as np


def encode(W, arch, k, x):
    """saepipe's inference rule on sae.h5 (raw units), float64."""
    pre = (x - W["b_dec"]) @ W["W_enc"] + W["b_enc"]
    if arch == "topk":
        kth = -np.sort(-pre, axis=1)[:, k - 1:k]
        return np.where((pre >= kth) & (pre > 0), pre, 0.0)
    if arch == "relu":
        return np.maximum(pre, 0.0)
    return np.where(pre > W["threshold"], pre, 0.0)  # jumprelu, batchtopk, matryoshka


def absorption(gen, W, arch, k, first, n, min_tokens=20):
    """(mean absorption_p, share of parents with absorption_p >= 0.5, parents measured, parents)
    over the tokens [first, first + n) of generator gen; W: sae.h5's arrays in float64."""
    active, _ = gen.codes(first, n)
    x = gen.tokens(first, n)[0][0]
    z = encode(W, arch, k, x)
    dec = W["W_dec"] / np.maximum(np.linalg.norm(W["W_dec"], axis=1, keepdims=True), 1e-30)
    P, C = gen.P, gen.C
    latent = (gen.feats[0][:P] @ dec.T).argmax(1)  # l_p
    kids = active[:, P:P + P * C].reshape(n, P, C).any(2)
    per = []
    for p in range(P):
        on = active[:, p]
        alone, with_child = on & ~kids[:, p], on & kids[:, p]
        if alone.sum() < min_tokens or with_child.sum() < min_tokens:
            continue
        fired = z[:, latent[p]] > 0
        ra, rc = fired[alone].mean(), fired[with_child].mean()
        per.append(1.0 if ra == 0 else float(np.clip(1 - rc / ra, 0, 1)))
    per = np.array(per)
    return (float(per.mean()) if len(per) else float("nan")), (float((per >= 0.5).mean()) if len(per) else float("nan")), len(per), P
