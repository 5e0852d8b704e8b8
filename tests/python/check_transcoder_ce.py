"""Independent check of the stats stage's CE loss with a transcoder spliced in place of an MLP, on
a GPT-2 directory: Hugging Face transformers' GPT2LMHeadModel in float64 runs the first
held-out sequences (as many as summary.json's ce_tokens covers) clean; spliced, with block L's
MLP output replaced by the transcoder's output (sae.h5 in float64: TopK of x W_enc + b_enc,
decoded, + W_skip x when present) from x = the input of block L's ln_2 (hook_resid_mid) in the
same forward; and with the MLP output zeroed. Mean CE, KL and CE loss recovered must agree.

usage: check_transcoder_ce.py MODEL_DIR STATS_RUN_DIR SAE_H5 ACTIVATIONS_H5
"""
import json
import os
import re
import sys

import h5py
import numpy as np
import torch
from transformers import GPT2LMHeadModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ce_reference import compare_ce, held_out_ids  # noqa: E402

model_dir, run, sae_path, acts = sys.argv[1:5]
s = json.load(open(os.path.join(run, "stats", "summary.json")))
sae = h5py.File(sae_path)
attr = lambda n: sae.attrs[n].decode() if isinstance(sae.attrs[n], bytes) else sae.attrs[n]
hook_in, hook_out, k = attr("hook"), attr("target_hook"), int(sae.attrs["k"])
L_in = re.fullmatch(r"blocks\.(\d+)\.hook_resid_mid", hook_in)
L_out = re.fullmatch(r"blocks\.(\d+)\.hook_mlp_out", hook_out)
assert L_in and L_out and L_in[1] == L_out[1], (hook_in, hook_out)
layer = int(L_out[1])
T = lambda n: torch.from_numpy(sae[n][...].astype(np.float64))
W_enc, b_enc, W_dec, b_dec = T("W_enc"), T("b_enc"), T("W_dec"), T("b_dec")
W_skip = T("W_skip") if "W_skip" in sae else None

model = GPT2LMHeadModel.from_pretrained(model_dir, local_files_only=True, dtype=torch.float64,
                                        attn_implementation="eager").eval()
ids = held_out_ids(s, acts)


def transcode(x):
    pre = x @ W_enc + b_enc
    v, i = torch.topk(pre, k, dim=-1)
    z = torch.zeros_like(pre).scatter(-1, i, v.clamp(min=0))
    y = z @ W_dec + b_dec
    return y + x @ W_skip.T if W_skip is not None else y


block = model.transformer.h[layer]
seen = {}
block.ln_2.register_forward_pre_hook(lambda m, args: seen.update(resid_mid=args[0]))
mode = {"edit": None}
block.mlp.register_forward_hook(
    lambda m, args, out: None if mode["edit"] is None else
    (transcode(seen["resid_mid"]) if mode["edit"] == "spliced" else torch.zeros_like(out)))
lp = []
with torch.no_grad():
    for e in (None, "spliced", "zero"):
        mode["edit"] = e
        lp.append(torch.log_softmax(model(ids).logits, dim=-1))
ce, recovered, kl = compare_ce(s, lp, ids)
n = ids.numel() - ids.shape[0]
print(f"{'skip ' if W_skip is not None else ''}transcoder {hook_in} -> {hook_out}: CE clean {ce[0]:.4f} spliced "
      f"{ce[1]:.4f} zero {ce[2]:.4f} recovered {recovered:.4f} over {n} predictions, KL {kl:.5f} "
      f"match transformers (float64, MLP output replaced by a forward hook)")
