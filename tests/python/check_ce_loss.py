"""Independent check of the stats stage's CE-loss figures on a model store: the first held-out
sequences (as many as summary.json's ce_tokens covers) run through the float64 PyTorch GPT-2 of
gpt2_reference.py clean, with the SAE (TopK, from sae.h5, float64) spliced in at its hook, and
zero-ablated; mean CE, KL and CE loss recovered must agree.

usage: check_ce_loss.py MODEL_DIR RUN_DIR
"""
import json
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ce_reference import compare_ce, held_out_ids  # noqa: E402
from gpt2_reference import forward, load_weights  # noqa: E402

model_dir, run = sys.argv[1], sys.argv[2]
s = json.load(open(os.path.join(run, "stats", "summary.json")))
cfg, w = load_weights(model_dir)
sae = h5py.File(os.path.join(run, "sae", "sae.h5"))
hook = sae.attrs["hook"]
hook = hook.decode() if isinstance(hook, bytes) else hook
k = int(sae.attrs["k"])
W_enc, b_enc, W_dec, b_dec = (torch.from_numpy(sae[n][...].astype(np.float64)) for n in ("W_enc", "b_enc", "W_dec", "b_dec"))
ids = held_out_ids(s, os.path.join(run, "activations", "activations.h5"))


def recon(x):
    pre = (x - b_dec) @ W_enc + b_enc
    v, i = torch.topk(pre, k, dim=-1)
    z = torch.zeros_like(pre).scatter(-1, i, v.clamp(min=0))
    return z @ W_dec + b_dec


lp = [torch.log_softmax(forward(cfg, w, ids, edit=e, logits=True)["logits"], dim=-1)
      for e in (None, {hook: recon}, {hook: torch.zeros_like})]
ce, recovered, kl = compare_ce(s, lp, ids)
n = ids.numel() - ids.shape[0]
print(f"CE clean {ce[0]:.4f} spliced {ce[1]:.4f} zero {ce[2]:.4f} recovered {recovered:.4f} "
      f"over {n} predictions, KL {kl:.5f} over {ids.numel()} positions match the float64 reference")
