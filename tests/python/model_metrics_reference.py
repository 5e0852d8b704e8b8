#!/usr/bin/env python3
"""Independent references for pipeline/model/spliced_loss and pipeline/model/logit_effects on a
GPT-2 directory (tests/python/make_tiny_gpt2.py): spliced next-token loss from the PyTorch
GPT-2 of gpt2_reference.py in float64, and direct logit effects of decoder rows in NumPy float64.

  model_metrics_reference.py MODEL_DIR OUT_DIR [--seqs 3 --ctx 40 --features 24 --top 5 --bins 10 --seed 0]

Writes OUT_DIR/tokens.i32 ([B, T] int32, raw little-endian), OUT_DIR/w_dec.f32 ([F, D] float32;
row 0 is zero, so all its effects tie) and OUT_DIR/reference.json:
  spliced[hook] = {clean, spliced, zero: sums over the B*(T-1) predictions (positions 0..T-2,
                   target the next token), n; kl_spliced, kl_zero: sums over all B*T positions,
                   n_positions}
    spliced: the hook's activation x replaced by x * 0.5 + 0.25 * (d % 5 - 2) at channel d (not
    undone by a LayerNorm); zero: by 0; KL(clean || other).
  logit = {top_ids, top_values, bottom_ids, bottom_values [F][L] (ties: lower id first),
           hist_lo, hist_hi [F], hist_counts [F][H], hist_slack [F]}
    effect[f] = ((w - mean(w)) * ln_f.weight) @ wte^T; histogram bin floor((e - lo) * (H / (hi - lo)))
    clipped to [0, H-1] (all in bin 0 when lo == hi); hist_slack counts effects within 1e-5 of
    the range from an interior bin edge (fp32 rounding may move them to the next bin).
Fails (exit 1) when an fp32 implementation could not be expected to reproduce the top/bottom id
sets (a gap at the L-th place below 1e-5 of the range).
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt2_reference import forward, load_weights  # noqa: E402

HOOKS = ["hook_embed", "hook_pos_embed", "ln_final.hook_normalized"] + [
    f"blocks.{l}.hook_{k}" for l in range(2) for k in ("resid_pre", "attn_out", "resid_mid", "mlp_out", "resid_post")]


def spliced_sums(cfg, w, ids, hook):
    shift = 0.25 * ((torch.arange(cfg["n_embd"], dtype=torch.float64) % 5) - 2)
    recon = lambda t: t * 0.5 + shift
    zero = torch.zeros_like
    lp = [torch.log_softmax(forward(cfg, w, ids, edit=e, logits=True)["logits"], dim=-1)
          for e in (None, {hook: recon}, {hook: zero})]
    tgt = ids[:, 1:].unsqueeze(-1)
    ce = [float(-l[:, :-1].gather(-1, tgt).sum()) for l in lp]
    p = lp[0].exp()
    kl = [float((p * (lp[0] - l)).sum()) for l in lp[1:]]
    return {"clean": ce[0], "spliced": ce[1], "zero": ce[2], "kl_spliced": kl[0], "kl_zero": kl[1],
            "n": int(tgt.numel()), "n_positions": int(ids.numel())}


def logit_reference(w, w_dec, L, H):
    wte = w["wte.weight"].numpy()
    lnw = w["ln_f.weight"].numpy()
    W = w_dec.astype(np.float64)
    E = ((W - W.mean(axis=1, keepdims=True)) * lnw) @ wte.T  # [F, V]
    V = E.shape[1]
    ids = np.arange(V)
    out = {k: [] for k in ("top_ids", "top_values", "bottom_ids", "bottom_values", "hist_lo", "hist_hi",
                           "hist_counts", "hist_slack")}
    ok = True
    for f, e in enumerate(E):
        lo, hi = float(e.min()), float(e.max())
        top = np.lexsort((ids, -e))
        bottom = np.lexsort((ids, e))
        span = max(hi - lo, 1e-30)
        if hi > lo and (e[top[L - 1]] - e[top[L]] < 1e-5 * span or e[bottom[L]] - e[bottom[L - 1]] < 1e-5 * span):
            print(f"row {f}: the L-th effect is within 1e-5 of the next; choose another seed")
            ok = False
        if hi > lo:
            b = np.clip(np.floor((e - lo) * (H / (hi - lo))).astype(np.int64), 0, H - 1)
            edges = lo + (hi - lo) * np.arange(1, H) / H
            slack = int((np.abs(e[:, None] - edges[None, :]) <= 1e-5 * span).any(axis=1).sum())
        else:
            b, slack = np.zeros(V, dtype=np.int64), 0
        out["top_ids"].append(top[:L].tolist())
        out["top_values"].append(e[top[:L]].tolist())
        out["bottom_ids"].append(bottom[:L].tolist())
        out["bottom_values"].append(e[bottom[:L]].tolist())
        out["hist_lo"].append(lo)
        out["hist_hi"].append(hi)
        out["hist_counts"].append(np.bincount(b, minlength=H).tolist())
        out["hist_slack"].append(slack)
    return out, ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--seqs", type=int, default=3)
    ap.add_argument("--ctx", type=int, default=40)
    ap.add_argument("--features", type=int, default=24)
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("--bins", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    cfg, w = load_weights(a.model_dir)
    rng = np.random.default_rng(a.seed)
    ids = rng.integers(0, cfg["vocab_size"], size=(a.seqs, a.ctx)).astype(np.int32)
    w_dec = (rng.standard_normal((a.features, cfg["n_embd"])) / np.sqrt(cfg["n_embd"])).astype(np.float32)
    w_dec[0] = 0
    os.makedirs(a.out_dir, exist_ok=True)
    ids.astype("<i4").tofile(os.path.join(a.out_dir, "tokens.i32"))
    w_dec.astype("<f4").tofile(os.path.join(a.out_dir, "w_dec.f32"))
    ref = {"B": a.seqs, "T": a.ctx, "F": a.features, "D": cfg["n_embd"], "L": a.top, "H": a.bins, "spliced": {}}
    with torch.no_grad():
        t = torch.tensor(ids, dtype=torch.long)
        for hook in HOOKS:
            ref["spliced"][hook] = spliced_sums(cfg, w, t, hook)
    ref["logit"], ok = logit_reference(w, w_dec, a.top, a.bins)
    with open(os.path.join(a.out_dir, "reference.json"), "w") as f:
        json.dump(ref, f)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
