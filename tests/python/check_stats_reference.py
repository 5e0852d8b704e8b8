"""Independent check of the stats stage's features.h5 and examples.h5 (TopK SAEs): re-encodes
the held-out rows of the store in float64 NumPy from sae.h5 and recomputes fire counts, maxima,
means, histograms, quantiles, top examples with their contexts, interval samples (by the same
counter hash, reimplemented in synthetic_reference.py) and decoder neighbours.

float32 (saepipe) and float64 (here) may disagree where the k-th and (k+1)-th pre-activations
of a token are nearly equal, or where a value sits on a bin edge; such cases are counted and
allowed, everything else must match exactly (counts, rows, token ids) or to 1e-4 (values).

usage: check_stats_reference.py RUN_DIR   (RUN_DIR holds activations/, sae/sae.h5, stats/)
"""
import json
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synthetic_reference import counter_hash, uniform01  # noqa: E402

run = sys.argv[1]
summary = json.load(open(os.path.join(run, "stats", "summary.json")))
fh = h5py.File(os.path.join(run, "stats", "features.h5"))
eh = h5py.File(os.path.join(run, "stats", "examples.h5"))
sae = h5py.File(os.path.join(run, "sae", "sae.h5"))
store = h5py.File(os.path.join(run, "activations", "activations.h5"))
assert sae.attrs["architecture"] == "topk", "this reference handles topk"
k = int(sae.attrs["k"])
first, n = summary["first_token"], summary["n_tokens"]
L = summary["sequence_length"]
hook = sae.attrs["hook"]
hook = hook.decode() if isinstance(hook, bytes) else hook
x = store["activations"][hook][first:first + n].astype(np.float64)
tokens = store["tokens"][first:first + n]
W_enc, b_enc = sae["W_enc"][...].astype(np.float64), sae["b_enc"][...].astype(np.float64)
W_dec, b_dec = sae["W_dec"][...].astype(np.float64), sae["b_dec"][...].astype(np.float64)
F = W_enc.shape[1]
errors = []


def check(cond, what):
    if not cond:
        errors.append(what)


pre = (x - b_dec) @ W_enc + b_enc
part = np.argpartition(-pre, k, axis=1)[:, :k + 1]
vals = np.take_along_axis(pre, part, axis=1)
order = np.argsort(-vals, axis=1)
part, vals = np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)
scale = np.abs(vals[:, :k]).max(axis=1) + 1e-12
ambiguous = (vals[:, k - 1] - vals[:, k] < 1e-5 * scale) | (np.abs(vals[:, k - 1]) < 1e-5 * scale)
act = np.zeros((n, F))
rows = np.arange(n)[:, None]
act[rows, part[:, :k]] = np.maximum(vals[:, :k], 0)
# Uncertain (token, latent) entries: the two latents at the k-th place of an ambiguous token.
amb_latents = np.zeros(F, dtype=np.int64)
unc_max = np.zeros(F)
unc = np.zeros((n, F), dtype=bool)
for t in np.nonzero(ambiguous)[0]:
    for f in part[t, k - 1:k + 1]:
        amb_latents[f] += 1
        unc[t, f] = True
        unc_max[f] = max(unc_max[f], abs(pre[t, f]))
print(f"{n} held-out tokens, {int(ambiguous.sum())} with a near-tie at the k-th latent")

fire = (act > 0).sum(axis=0)
got_fire = fh["fire_count"][...]
check(np.all(np.abs(got_fire - fire) <= amb_latents), "fire_count differs beyond near-ties")
mx = act.max(axis=0)
check(np.allclose(fh["max_activation"][...], mx, rtol=1e-4, atol=1e-6), "max_activation")
with np.errstate(invalid="ignore", divide="ignore"):
    mean = np.where(fire > 0, act.sum(axis=0) / np.maximum(fire, 1), 0)
check(np.allclose(fh["mean_activation"][...], mean, rtol=1e-4, atol=1e-6), "mean_activation")
check(np.array_equal(fh["dead"][...].astype(bool), got_fire == 0), "dead flags vs fire_count")

H = int(fh.attrs["hist_bins"])
hist = fh["hist_counts"][...]
levels = fh.attrs["quantile_levels"]
quant = fh["quantiles"][...]
hist_mismatch = 0
for f in range(F):
    v = act[:, f][act[:, f] > 0]
    if len(v) == 0:
        continue
    b = np.minimum(H - 1, (v / v.max() * H).astype(np.int64))
    ref = np.bincount(b, minlength=H)
    edge = np.abs(v / v.max() * H - np.round(v / v.max() * H)) < 1e-4
    if not np.array_equal(ref, hist[f]):
        hist_mismatch += 1
        check(np.abs(ref - hist[f]).sum() <= 2 * edge.sum() + amb_latents[f], f"hist_counts of latent {f}")
    # The order statistic with the uncertain entries in and out brackets the quantile.
    sure = act[:, f][(act[:, f] > 0) & ~unc[:, f]]
    s_all, s_sure = np.sort(v), np.sort(sure if len(sure) else v)
    for qi, q in enumerate(levels):
        e1 = s_all[max(1, int(np.ceil(q * len(s_all)))) - 1]
        e2 = s_sure[max(1, int(np.ceil(q * len(s_sure)))) - 1]
        w = v.max() / 256 * 1.001 + 1e-6
        check(min(e1, e2) - w <= quant[f, qi] <= max(e1, e2) + w, f"quantile {q} of latent {f}")
print(f"histograms: {hist_mismatch} latents differ only at bin edges")

# Top examples: rows in order (activation desc, row asc) where the order is unambiguous.
C = int(eh.attrs["context_before"]) + 1 + int(eh.attrs["context_after"])
before = int(eh.attrs["context_before"])
top_row, top_act = eh["top/row"][...], eh["top/activation"][...]
ctx_tok, ctx_act = eh["top/ctx_tokens"][...], eh["top/ctx_acts"][...]
E = top_row.shape[1]
checked = 0
for f in range(F):
    a = act[:, f]
    idx = np.nonzero(a > 0)[0]
    idx = idx[np.lexsort((idx, -a[idx]))][:E + 1]
    for e in range(E):
        if e < len(idx) and a[idx[e]] <= unc_max[f] * (1 + 1e-5):
            break  # from here on an uncertain entry could take this place
        if e >= len(idx):
            if amb_latents[f]:
                break
            check(top_row[f, e] == -1, f"top slot {e} of latent {f} should be empty")
            continue
        nxt = a[idx[e + 1]] if e + 1 < len(idx) else -1
        prv = a[idx[e - 1]] if e > 0 else np.inf
        if a[idx[e]] - nxt < 1e-5 * a[idx[e]] or prv - a[idx[e]] < 1e-5 * a[idx[e]]:
            continue  # near-tie: float32 may order it differently
        r = idx[e]
        check(top_row[f, e] == first + r, f"top row of latent {f} slot {e}: {top_row[f, e]} != {first + r}")
        check(abs(top_act[f, e] - a[r]) <= 1e-4 * a[r] + 1e-6, f"top activation of latent {f} slot {e}")
        seq0 = (first + r) // L * L - first
        for c in range(C):
            w = r - before + c
            inside = seq0 <= w < seq0 + L and 0 <= w < n
            check(ctx_tok[f, e, c] == (tokens[w] if inside else -1), f"context token {c} of latent {f} slot {e}")
            if inside:
                check(abs(ctx_act[f, e, c] - act[w, f]) <= 1e-4 * a[r] + 1e-6, f"context act {c} of latent {f} slot {e}")
        checked += 1
print(f"top examples: {checked} checked exactly")
# Near-ties and uncertain latents are skipped above: make sure most were compared, so a bug that
# made every entry look ambiguous cannot pass by checking nothing.
live = int((act > 0).any(axis=0).sum())
check(checked >= live * min(E, 5), f"only {checked} top examples compared ({live} live latents, {E} slots each)")

# Interval samples: in each bin of (0, max], the rows of smallest hash.
nb, per = int(eh.attrs["interval_bins"]), int(eh.attrs["interval_per_bin"])
seed = 0
intervals = 0
if nb > 0:
    irow = eh["interval/row"][...]
    for f in range(F):
        a = act[:, f]
        idx = np.nonzero(a > 0)[0]
        if len(idx) == 0 or amb_latents[f]:
            continue
        pos = a[idx] / a[idx].max() * nb
        # A value on an interior bin edge could fall either side in float32 (the max itself
        # sits on the top edge and goes to the last bin in both).
        inner = (pos > 0.5) & (pos < nb - 0.5)
        if np.any(np.abs(pos[inner] - np.round(pos[inner])) < 1e-4):
            continue
        b = np.minimum(nb - 1, pos.astype(np.int64))
        h = counter_hash(seed, 0x1A7E5A11, np.uint64(f), (first + idx).astype(np.uint64))
        u = uniform01(h)
        for j in range(nb):
            sel = idx[b == j]
            want = sel[np.lexsort((sel, u[b == j]))][:per] + first
            want = np.concatenate([want, -np.ones(per - len(want), dtype=np.int64)])
            check(np.array_equal(irow[f, j * per:(j + 1) * per], want), f"interval samples of latent {f} bin {j}")
            intervals += 1
    print(f"interval samples: {intervals} bins compared")
    check(intervals >= live * nb // 2, f"only {intervals} interval bins compared ({live} live latents, {nb} bins)")

# Decoder neighbours (float64 cosines; near-ties allowed to swap).
K = int(fh.attrs["n_neighbours"])
if K > 0:
    Wn = W_dec / np.linalg.norm(W_dec, axis=1, keepdims=True)
    cos = Wn @ Wn.T
    np.fill_diagonal(cos, -np.inf)
    ni, nc = fh["neighbour_index"][...], fh["neighbour_cosine"][...]
    check(ni.shape == (F, K), f"neighbour_index shape {ni.shape}")
    for f in range(F):
        o = np.argsort(-cos[f], kind="stable")[:K]
        check(np.allclose(nc[f], cos[f, o], atol=1e-5), f"neighbour cosines of latent {f}")
        check(len(set(ni[f])) == K and all(0 <= g < F and g != f for g in ni[f]), f"neighbour indices of latent {f}: {ni[f]}")
        for j in range(K):
            if 0 <= ni[f, j] < F and ni[f, j] != o[j]:
                check(abs(cos[f, ni[f, j]] - cos[f, o[j]]) < 1e-5, f"neighbour {j} of latent {f}")

# Summary figures.
recon = np.zeros_like(x)
recon = act @ W_dec + b_dec
fvu = ((recon - x) ** 2).sum() / ((x - x.mean(axis=0)) ** 2).sum()
check(abs(summary["fvu"] - fvu) <= 1e-4 * fvu + 1e-7, f"fvu {summary['fvu']} vs {fvu}")
check(abs(summary["l0"] - (act > 0).sum(axis=1).mean()) <= ambiguous.mean() + 1e-9, "l0")

if errors:
    print(f"{len(errors)} mismatches, first: " + "; ".join(errors[:5]))
    sys.exit(1)
print("stats match the float64 reference")
