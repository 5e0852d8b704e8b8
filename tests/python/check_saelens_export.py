#!/usr/bin/env python3
"""Loads saepipe's saelens/ exports with the real SAELens (the venv of scripts/python_env.sh)
and checks them against sae.h5 and the activation store:

  check_saelens_export.py STORE_DIR MODEL_DIR SAE_DIR...   (each SAE_DIR holds sae.h5 and saelens/)

For every SAE: SAE.load_from_disk gives the class of its architecture (topk -> TopKSAE, relu ->
StandardSAE, jumprelu, batchtopk and matryoshka -> JumpReLUSAE, gated -> GatedSAE with sae.h5's
b_enc as b_gate) with sae.h5's weights bit for bit;
cfg.json is exactly what SAELens' own save_model writes for the loaded SAE (every key and
value, metadata included); the metadata survives loading (hook_name, context_size,
seqpos_slice, prepend_bos, model_name, dataset_path, sae_lens_version, ...); SAELens'
encode/decode on store rows agree with a float64 NumPy forward pass of sae.h5 by saepipe's
inference rule. Then, with the first SAE, ActivationsStore.from_sae (which reads
metadata.hook_name, context_size, prepend_bos and seqpos_slice) on a TransformerLens model
holding the store's GPT-2 weights reproduces the store's activations from its tokens (no
network: the model is built from MODEL_DIR's config and weights).
Exit 1 on the first failed check.
"""
import json
import os
import sys
import tempfile
import warnings

import h5py
import numpy as np
import torch

warnings.filterwarnings("ignore")
from sae_lens import SAE, ActivationsStore  # noqa: E402

FAILED = []


def check(ok, what):
    print(("ok: " if ok else "FAIL: ") + what)
    if not ok:
        FAILED.append(what)


def numpy_forward(W, arch, k, x):
    """saepipe's inference rule on sae.h5, in float64."""
    pre = (x - W["b_dec"]) @ W["W_enc"] + W["b_enc"]
    if arch == "gated":  # gate: pre > 0; magnitude: exp(r_mag) (pre - b_gate) + b_mag, ReLU
        mag = np.exp(W["r_mag"]) * (pre - W["b_enc"]) + W["b_mag"]
        z = np.where(pre > 0, np.maximum(mag, 0.0), 0.0)
    elif arch == "topk":
        kth = -np.sort(-pre, axis=1)[:, k - 1:k]
        z = np.where((pre >= kth) & (pre > 0), pre, 0.0)
    elif arch == "relu":
        z = np.maximum(pre, 0.0)
    else:  # jumprelu, batchtopk, matryoshka: the saved threshold
        z = np.where(pre > W["threshold"], pre, 0.0)
    return z, z @ W["W_dec"] + W["b_dec"]


def check_sae(sae_dir, store, manifest, x):
    f = h5py.File(f"{sae_dir}/sae.h5", "r")
    arch = f.attrs["architecture"]
    arch = arch.decode() if isinstance(arch, bytes) else str(arch)
    k = int(f.attrs["k"])
    W = {n: f[n][...] for n in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold", "r_mag", "b_mag") if n in f}
    d = f"{sae_dir}/saelens"
    sae = SAE.load_from_disk(d, device="cpu")
    want_cls = {"topk": "TopKSAE", "relu": "StandardSAE", "jumprelu": "JumpReLUSAE", "batchtopk": "JumpReLUSAE",
               "matryoshka": "JumpReLUSAE", "gated": "GatedSAE"}[arch]
    check(type(sae).__name__ == want_cls, f"{arch}: SAE.load_from_disk gives {type(sae).__name__} (want {want_cls})")
    names = ["W_enc", "b_enc", "W_dec", "b_dec"] + (["threshold"] if want_cls == "JumpReLUSAE" else [])
    names += ["r_mag", "b_mag"] if arch == "gated" else []
    theirs = {"b_enc": "b_gate"} if arch == "gated" else {}
    same = all(np.array_equal(getattr(sae, theirs.get(n, n)).detach().numpy(), W[n]) for n in names)
    check(same, f"{arch}: SAELens holds sae.h5's {', '.join(names)} bit for bit")
    if arch == "topk":
        check(sae.cfg.k == k and sae.cfg.rescale_acts_by_decoder_norm is False, f"topk: k = {sae.cfg.k}")

    # cfg.json is what SAELens' own save_model writes for this SAE.
    ours = json.load(open(f"{d}/cfg.json"))
    with tempfile.TemporaryDirectory() as t:
        sae.save_model(t)
        theirs = json.load(open(f"{t}/cfg.json"))
    diff = sorted(set(ours) ^ set(theirs)) + sorted(n for n in set(ours) & set(theirs) if ours[n] != theirs[n])
    check(ours == theirs, f"{arch}: cfg.json equals SAELens' save_model output" + (f" (differs in {diff})" if diff else ""))

    # The metadata survives loading.
    m = sae.cfg.metadata
    src = manifest["source"]
    exclude_bos = bool(src.get("exclude_bos"))
    want = {
        "hook_name": store["hook"],
        "hook_head_index": None,
        "context_size": manifest["context"] + (1 if exclude_bos else 0),
        "prepend_bos": bool(src.get("prepend_bos")),
        "seqpos_slice": [1, None] if exclude_bos else [None],
        "model_name": os.path.basename(os.path.normpath(src["model"])),
        "model_class_name": "HookedTransformer",
        "dataset_path": src["tokens"],
        "sae_lens_version": "6.54.12",
        "sae_lens_training_version": None,
        "sequence_separator_token": None,
        "disable_concat_sequences": False,
    }
    got = {key: m[key] for key in want}
    wrong = ", ".join(f"{key}={got[key]!r} (want {want[key]!r})" for key in want if got[key] != want[key])
    check(got == want, f"{arch}: metadata after load_from_disk: " + (wrong or f"{', '.join(want)} as expected"))
    check(m.model_from_pretrained_kwargs == {"fold_ln": False, "center_writing_weights": False, "center_unembed": False,
                                             "fold_value_biases": False, "refactor_factored_attn_matrices": False},
          f"{arch}: model_from_pretrained_kwargs say the unprocessed model")

    # SAELens' forward pass against NumPy's on sae.h5.
    with torch.no_grad():
        z_l = sae.encode(torch.from_numpy(x)).numpy().astype(np.float64)
        xh_l = sae.decode(torch.from_numpy(z_l.astype(np.float32))).numpy().astype(np.float64)
    z_r, xh_r = numpy_forward(W, arch, k, x.astype(np.float64))
    same_active = np.mean((z_l > 0) == (z_r > 0))
    zerr = np.abs(z_l - z_r).max() / max(np.abs(z_r).max(), 1e-30)
    xerr = np.abs(xh_l - xh_r).max() / max(np.abs(xh_r).max(), 1e-30)
    l0 = (z_r > 0).sum(1).mean()
    check(l0 > 0 and same_active > 0.9999 and zerr < 1e-4 and xerr < 1e-4,
          f"{arch}: SAELens encode/decode vs NumPy on sae.h5 over {len(x)} rows: active sets agree {same_active:.6f}, "
          f"max rel error z {zerr:.2e}, x_hat {xerr:.2e}, l0 {l0:.2f}")
    return sae


def gpt2_hooked_transformer(model_dir):
    """A TransformerLens HookedTransformer with the GPT-2 weights of a local HF directory,
    unprocessed (as from_pretrained_no_processing loads a model), built without the network."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights
    from transformers import GPT2LMHeadModel

    hf = GPT2LMHeadModel.from_pretrained(model_dir, local_files_only=True).float().eval()
    c = hf.config
    cfg = HookedTransformerConfig(
        n_layers=c.n_layer, d_model=c.n_embd, n_ctx=c.n_positions, d_head=c.n_embd // c.n_head, n_heads=c.n_head,
        d_mlp=c.n_inner or 4 * c.n_embd, d_vocab=c.vocab_size, act_fn="gelu_new", normalization_type="LN",
        eps=c.layer_norm_epsilon, positional_embedding_type="standard", default_prepend_bos=False)
    model = HookedTransformer(cfg)
    model.load_and_process_state_dict(convert_gpt2_weights(hf, cfg), fold_ln=False, center_writing_weights=False,
                                      center_unembed=False, fold_value_biases=False,
                                      refactor_factored_attn_matrices=False)
    return model.eval()


def check_from_sae(sae, store_dir, manifest, model_dir):
    from datasets import Dataset

    a = h5py.File(f"{store_dir}/activations.h5", "r")
    hook = sae.cfg.metadata.hook_name
    T = sae.cfg.metadata.context_size
    rows = manifest["context"]
    src = manifest["source"]
    bos = src["bos_token"]
    n_seq = 8
    tokens = a["tokens"][: n_seq * rows].reshape(n_seq, rows).astype(np.int64)
    # The store's sequences as a pretokenized dataset: [BOS] + the stored tokens when the BOS
    # position was not stored.
    seqs = np.concatenate([np.full((n_seq, 1), bos), tokens], axis=1) if T == rows + 1 else tokens
    model = gpt2_hooked_transformer(model_dir)
    st = ActivationsStore.from_sae(model, sae, dataset=Dataset.from_dict({"input_ids": seqs.tolist()}), streaming=False,
                                   store_batch_size_prompts=n_seq, n_batches_in_buffer=2, train_batch_size_tokens=64,
                                   device="cpu")
    batch = st.get_batch_tokens(n_seq)
    check(np.array_equal(batch.numpy(), seqs), f"from_sae: the store's {n_seq} sequences of context_size {T} as its batch")
    with torch.no_grad():
        acts = st.get_activations(batch).numpy().reshape(n_seq, -1, sae.cfg.d_in)
    ours = a[f"activations/{hook}"][: n_seq * rows].reshape(n_seq, rows, -1)
    err = np.abs(acts - ours).max() / np.abs(ours).max()
    check(acts.shape == ours.shape and err < 1e-4,
          f"from_sae at {hook} (seqpos_slice {sae.cfg.metadata.seqpos_slice}) reproduces the store: "
          f"shape {acts.shape} vs {ours.shape}, max rel error {err:.2e}")


def main():
    store_dir, model_dir, sae_dirs = sys.argv[1], sys.argv[2], sys.argv[3:]
    manifest = json.load(open(f"{store_dir}/manifest.json"))
    a = h5py.File(f"{store_dir}/activations.h5", "r")
    saes = []
    for s in sae_dirs:
        hook = h5py.File(f"{s}/sae.h5", "r").attrs["hook"]
        hook = hook.decode() if isinstance(hook, bytes) else str(hook)
        x = a[f"activations/{hook}"][:2048].astype(np.float32)
        saes.append(check_sae(s, {"hook": hook}, manifest, x))
    check(len(saes) == len(sae_dirs) > 0, f"{len(saes)} SAEs loaded")
    check_from_sae(saes[0], store_dir, manifest, model_dir)
    print(f"{len(FAILED)} checks failed" if FAILED else "all SAELens checks passed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
