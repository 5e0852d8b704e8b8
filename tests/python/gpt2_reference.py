#!/usr/bin/env python3
"""Independent golden reference for saepipe's GPT-2 harvest: a short PyTorch GPT-2 (float64)
reading the same safetensors (with its own parser), run on the sequences stored in an
activation store and compared at every stored hook.

  gpt2_reference.py MODEL_DIR STORE_DIR [--tol 1e-5] [--tokens TOKEN_FILE]

Checks per hook: max|saepipe - reference| / max|reference| <= tol. With --tokens (an llm.c
file), also checks that the store's tokens are [BOS] + the file's tokens, sequence by sequence.
Exit 0 when every check holds. Also importable: load_weights(), forward() (with hook edits and
logits: tests/python/model_metrics_reference.py).
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        raw = data[b:e]
        if t["dtype"] == "F32":
            a = np.frombuffer(raw, "<f4")
        elif t["dtype"] == "F16":
            a = np.frombuffer(raw, "<f2").astype(np.float32)
        elif t["dtype"] == "BF16":
            a = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(t["dtype"])
        out[name] = a.reshape(t["shape"])
    return out


def load_weights(model_dir, dtype=torch.float64):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    index = os.path.join(model_dir, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    w = {}
    for f in files:
        w.update(read_safetensors(os.path.join(model_dir, f)))
    w = {k[len("transformer."):] if k.startswith("transformer.") else k: torch.tensor(np.array(v), dtype=dtype) for k, v in w.items()}
    return cfg, w


def forward(cfg, w, ids, n_layers=None, edit=None, logits=False):
    """ids: LongTensor [B, T]. Returns {hook name: tensor [B, T, C]}: what each hook saw.
    edit: {hook name: function(tensor) -> tensor}: the returned value replaces the hook's and flows
    on (TransformerLens semantics). logits (all layers only): also "logits" [B, T, V], the output
    of ln_f times the tied unembedding wte^T."""
    C, H, eps = cfg["n_embd"], cfg["n_head"], cfg.get("layer_norm_epsilon", 1e-5)
    B, T = ids.shape
    hs = C // H
    acts = {}

    def hook(name, t):
        acts[name] = t
        return edit[name](t) if edit and name in edit else t

    embed = hook("hook_embed", w["wte.weight"][ids])
    pos = hook("hook_pos_embed", w["wpe.weight"][:T].unsqueeze(0).expand(B, T, C))
    x = embed + pos
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    L = cfg["n_layer"] if n_layers is None else n_layers
    for l in range(L):
        p = f"h.{l}."
        x = hook(f"blocks.{l}.hook_resid_pre", x)
        h = F.layer_norm(x, (C,), w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps)
        q, k, v = (h @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]).split(C, dim=-1)
        q, k, v = (t.view(B, T, H, hs).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hs)
        att = torch.softmax(att.masked_fill(~mask, float("-inf")), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        attn_out = hook(f"blocks.{l}.hook_attn_out", y @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"])
        x = hook(f"blocks.{l}.hook_resid_mid", x + attn_out)
        h = F.layer_norm(x, (C,), w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps)
        m = F.gelu(h @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"], approximate="tanh")
        mlp_out = hook(f"blocks.{l}.hook_mlp_out", m @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"])
        x = hook(f"blocks.{l}.hook_resid_post", x + mlp_out)
    if L == cfg["n_layer"]:
        n = hook("ln_final.hook_normalized", F.layer_norm(x, (C,), None, None, eps))  # before ln_f's affine
        if logits:
            acts["logits"] = (n * w["ln_f.weight"] + w["ln_f.bias"]) @ w["wte.weight"].T
    return acts


def main():
    import h5py
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("store_dir")
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--tokens")
    a = ap.parse_args()
    cfg, w = load_weights(a.model_dir)
    man = json.load(open(os.path.join(a.store_dir, "manifest.json")))
    src = man["source"]
    f = h5py.File(os.path.join(a.store_dir, "activations.h5"), "r")
    tokens, seq, pos = f["tokens"][...], f["sequence"][...], f["position"][...]
    R = man["context"]
    T = R + (1 if src["exclude_bos"] else 0)
    n_seq = len(tokens) // R
    ok = True
    if not (np.array_equal(seq, np.repeat(np.arange(n_seq), R)) and np.array_equal(pos, np.tile(np.arange(T - R, T), n_seq))):
        print("FAIL sequence/position datasets"); ok = False
    if a.tokens:  # the sequences from the token file (llm.c when the magic matches, else raw uint16)
        head = np.fromfile(a.tokens, dtype="<i4", count=1)
        raw = np.fromfile(a.tokens, dtype="<u2", offset=1024 if head[0] == 20240520 else 0).astype(np.int64)
        P = T - 1 if src["prepend_bos"] else T
        ids = raw[: n_seq * P].reshape(n_seq, P)
        if src["prepend_bos"]:
            ids = np.concatenate([np.full((n_seq, 1), src["bos_token"]), ids], axis=1)
        good = np.array_equal(tokens.reshape(n_seq, R), ids[:, T - R:])
        print(f"tokens vs {a.tokens}: {'ok' if good else 'FAIL'}")
        ok &= good
    else:  # the sequences from the store
        assert src["prepend_bos"] or not src["exclude_bos"], "position 0 is not stored: pass --tokens"
        ids = tokens.reshape(n_seq, R).astype(np.int64)
        if src["exclude_bos"]:
            ids = np.concatenate([np.full((n_seq, 1), src["bos_token"]), ids], axis=1)
    with torch.no_grad():
        ref = forward(cfg, w, torch.tensor(ids))
    for hook in man["hooks"]:
        got = f["activations/" + hook][...].astype(np.float64)
        r = ref[hook].numpy()[:, T - R:, :].reshape(-1, cfg["n_embd"])
        rel = np.abs(got - r).max() / max(np.abs(r).max(), 1e-30)
        good = rel <= a.tol
        print(f"{hook}: max relative difference {rel:.3g} ({'ok' if good else 'FAIL'}, tol {a.tol:g})")
        ok &= bool(good)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
