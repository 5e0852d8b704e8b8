"""What the CE-loss checks share: the held-out sequences stats evaluated, and the comparison of
summary.json's CE, KL and CE-loss-recovered with log-probabilities computed by a reference
(clean, spliced, zero-ablated)."""
import sys

import h5py
import numpy as np
import torch


def held_out_ids(summary, activations_h5):
    """The first held-out sequences, as many as summary.json's ce_tokens covers, as (n_seq, L)."""
    L = summary["sequence_length"]
    n_seq = summary["ce_tokens"] // (L - 1)
    first = summary["first_token"]
    tokens = h5py.File(activations_h5)["tokens"][first:first + n_seq * L]
    return torch.from_numpy(tokens.astype(np.int64)).view(n_seq, L)


def compare_ce(summary, log_probs, ids):
    """log_probs: [clean, spliced, zero] log-softmax over the vocabulary for ids. Exits 1 with one
    line naming what differs by more than 1e-4 relative; returns (ce, recovered, kl) otherwise."""
    tgt = ids[:, 1:].unsqueeze(-1)
    n = tgt.numel()
    ce = [float(-lp[:, :-1].gather(-1, tgt).sum()) / n for lp in log_probs]
    clean = log_probs[0]
    kl = float((clean.exp() * (clean - log_probs[1])).sum()) / ids.numel()  # every position, as SAELens
    ref = {"ce_loss_clean": ce[0], "ce_loss_spliced": ce[1], "ce_loss_zero": ce[2], "kl_div": kl,
           "ce_loss_recovered": (ce[2] - ce[1]) / (ce[2] - ce[0])}
    bad = [f"{key} {summary.get(key)} vs {v}" for key, v in ref.items()
           if key not in summary or abs(summary[key] - v) > 1e-4 * max(abs(v), 1e-2)]
    if summary["ce_tokens"] != n or summary.get("kl_positions") != ids.numel() or bad:
        print(f"ce_tokens {summary['ce_tokens']} vs {n}; kl_positions {summary.get('kl_positions')} vs "
              f"{ids.numel()}; " + "; ".join(bad))
        sys.exit(1)
    return ce, ref["ce_loss_recovered"], kl
