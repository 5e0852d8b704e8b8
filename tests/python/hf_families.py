#!/usr/bin/env python3
"""Tiny random models of every family saepipe reads, built with Hugging Face transformers'
save_pretrained, and the transformers forward pass on them as the reference (float64, eager
attention): every TransformerLens hook, the logits and spliced next-token losses.

  hf_families.py build             builds the fixtures once (cached by the content of this file
                                   and the transformers version) and prints their directory
  hf_families.py check FIX OUT     compares saepipe's outputs (tests/tools/model_probe.cpp, one
                                   OUT/<name>/ per model) with the references; exit 1 on a mismatch

Each fixture FIX/<name>/ holds model/ (config.json + safetensors), tokens.i32 ([B, T] int32,
B = 2, T = 24), edit_hook.txt and ref/ (<hook>.npy, logits.npy, spliced.json). The configs
exercise: sliding windows shorter than the context (mistral, qwen3, gemma2, gemma3), GQA and MQA,
head_dim != d_model / heads, tied and untied embeddings, llama3 and linear rope scaling, attention
and final soft-capping, bf16 and fp16 weights, a sharded checkpoint, a checkpoint without the
"model." prefix, old-style config keys (rope_scaling / rope_local_base_freq /
sliding_window_pattern; rotary_pct), a sequential GPT-NeoX.
"""
import hashlib
import json
import os
import shutil
import sys

import numpy as np
import torch
import torch.nn.functional as F
import transformers as tf

B, T = 2, 24
TOL = 1e-5

FAMILIES = {
    "gpt2": dict(cls="GPT2Config", kw=dict(vocab_size=96, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                           bos_token_id=95, eos_token_id=95), dtype="float32",
                 edit="blocks.0.hook_resid_post"),
    "gpt_neox": dict(cls="GPTNeoXConfig", kw=dict(vocab_size=96, hidden_size=32, num_hidden_layers=2,
                                                  num_attention_heads=4, intermediate_size=80,
                                                  rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                                   "partial_rotary_factor": 0.25},
                                                  max_position_embeddings=64, bos_token_id=0, eos_token_id=0),
                     dtype="float16", edit="blocks.1.hook_attn_out", old_keys="neox"),
    "gpt_neox_seq": dict(cls="GPTNeoXConfig", kw=dict(vocab_size=96, hidden_size=32, num_hidden_layers=2,
                                                      num_attention_heads=2, intermediate_size=64,
                                                      use_parallel_residual=False, max_position_embeddings=64,
                                                      rope_parameters={"rope_type": "default", "rope_theta": 500.0,
                                                                       "partial_rotary_factor": 0.5},
                                                      bos_token_id=0, eos_token_id=0),
                         dtype="float32", edit="blocks.0.hook_mlp_out"),
    "llama": dict(cls="LlamaConfig", kw=dict(vocab_size=96, hidden_size=48, intermediate_size=72, num_hidden_layers=2,
                                             num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                             max_position_embeddings=64, bos_token_id=1, eos_token_id=2,
                                             rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0,
                                                              "factor": 8.0, "low_freq_factor": 1.0,
                                                              "high_freq_factor": 4.0,
                                                              "original_max_position_embeddings": 16}),
                  dtype="bfloat16", edit="blocks.1.hook_resid_post"),
    "mistral": dict(cls="MistralConfig", kw=dict(vocab_size=96, hidden_size=32, intermediate_size=64,
                                                 num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
                                                 sliding_window=5, max_position_embeddings=64,
                                                 tie_word_embeddings=True, bos_token_id=1, eos_token_id=2),
                    dtype="float32", edit="blocks.0.hook_attn_out", base_model=True),
    "qwen2": dict(cls="Qwen2Config", kw=dict(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                             rope_parameters={"rope_type": "linear", "factor": 2.0,
                                                              "rope_theta": 10000.0}),
                  dtype="bfloat16", edit="blocks.0.hook_resid_post", shard="4KB"),
    "qwen3": dict(cls="Qwen3Config", kw=dict(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                             num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                             attention_bias=True, use_sliding_window=True, sliding_window=6,
                                             max_window_layers=1, max_position_embeddings=64,
                                             tie_word_embeddings=True),
                  dtype="float32", edit="blocks.1.hook_mlp_out"),
    "gemma2": dict(cls="Gemma2Config", kw=dict(vocab_size=96, hidden_size=32, intermediate_size=64,
                                               num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                                               head_dim=16, sliding_window=5, query_pre_attn_scalar=24,
                                               attn_logit_softcapping=5.0, final_logit_softcapping=3.0,
                                               max_position_embeddings=64),
                   dtype="bfloat16", edit="blocks.1.hook_mlp_out"),
    "gemma3_text": dict(cls="Gemma3TextConfig", kw=dict(vocab_size=96, hidden_size=32, intermediate_size=64,
                                                        num_hidden_layers=3, num_attention_heads=4,
                                                        num_key_value_heads=1, head_dim=16, sliding_window=5,
                                                        query_pre_attn_scalar=16, max_position_embeddings=64,
                                                        layer_types=["sliding_attention", "full_attention",
                                                                     "sliding_attention"],
                                                        rope_parameters={
                                                            "full_attention": {"rope_type": "linear", "factor": 4.0,
                                                                               "rope_theta": 1000000.0},
                                                            "sliding_attention": {"rope_type": "default",
                                                                                  "rope_theta": 100.0}}),
                        dtype="float32", edit="blocks.2.hook_resid_post", old_keys="gemma3"),
}


def randomize(model, seed, gemma):
    """Weights that make every part of the forward pass matter (the default init leaves Gemma's
    norm weights at 0 and most activations tiny)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g, dtype=torch.float64)
            if p.dim() == 1:
                is_norm = ("norm" in name or "ln" in name) and name.endswith("weight")
                p.copy_((0.0 if gemma else 1.0) + 0.1 * r if is_norm else 0.1 * r)
            elif "embed" in name or "wte" in name or "wpe" in name or "lm_head" in name:
                p.copy_(r)
            else:
                fan_in = p.shape[0] if isinstance(p, torch.nn.Parameter) and "c_" in name else p.shape[1]
                p.copy_(r / fan_in ** 0.5)


def old_style(config_path, kind):
    """Rewrites a config.json with the keys older transformers wrote (and the Hub still has)."""
    c = json.load(open(config_path))
    if kind == "gemma3":
        rp = c.pop("rope_parameters")
        c["rope_theta"] = rp["full_attention"]["rope_theta"]
        c["rope_scaling"] = {k: v for k, v in rp["full_attention"].items() if k != "rope_theta"}
        c["rope_local_base_freq"] = rp["sliding_attention"]["rope_theta"]
        c.pop("layer_types")
        c["sliding_window_pattern"] = 2  # layers 0 and 2 local, 1 global, as layer_types said
    elif kind == "neox":
        rp = c.pop("rope_parameters")
        c["rotary_pct"] = rp["partial_rotary_factor"]
        c["rotary_emb_base"] = rp["rope_theta"]
    json.dump(c, open(config_path, "w"), indent=2)


def modules(model, family):
    """(base, layers, embed, pos, final_norm) of a CausalLM."""
    if family == "gpt2":
        b = model.transformer
        return b, b.h, b.wte, b.wpe, b.ln_f
    if family.startswith("gpt_neox"):
        b = model.gpt_neox
        return b, b.layers, b.embed_in, None, b.final_layer_norm
    b = model.model
    return b, b.layers, b.embed_tokens, None, b.norm


def hook_modules(family, layer):
    """hook kind -> (module, 'out' | 'pre') inside one decoder layer."""
    gemma = family.startswith("gemma")
    if family == "gpt2":
        return {"attn_out": (layer.attn, "out"), "mlp_out": (layer.mlp, "out"), "resid_mid": (layer.ln_2, "pre")}
    if family.startswith("gpt_neox"):
        d = {"attn_out": (layer.attention, "out"), "mlp_out": (layer.mlp, "out")}
        if not layer.use_parallel_residual:
            d["resid_mid"] = (layer.post_attention_layernorm, "pre")
        return d
    if gemma:
        return {"attn_out": (layer.post_attention_layernorm, "out"), "mlp_out": (layer.post_feedforward_layernorm, "out"),
                "resid_mid": (layer.pre_feedforward_layernorm, "pre")}
    return {"attn_out": (layer.self_attn, "out"), "mlp_out": (layer.mlp, "out"),
            "resid_mid": (layer.post_attention_layernorm, "pre")}


def first(x):
    return x[0] if isinstance(x, tuple) else x


def run(model, family, ids, edit=None):
    """Returns ({hook: array [B*T, D]}, logits [B, T, V]); edit = (hook, fn) replaces that hook's
    value (an output hook: attn_out, mlp_out, resid_post)."""
    base, layers, embed, pos, fnorm = modules(model, family)
    acts, handles = {}, []

    def out_hook(name):
        def f(mod, args, out):
            v = first(out)
            acts[name] = v.detach().clone()
            if edit and edit[0] == name:
                nv = edit[1](v)
                return (nv,) + tuple(out[1:]) if isinstance(out, tuple) else nv
        return f

    def pre_hook(name):
        def f(mod, args, kwargs):
            v = args[0] if args else kwargs["hidden_states"]
            acts[name] = v.detach().clone()
        return f

    handles.append(embed.register_forward_hook(out_hook("hook_embed")))
    if pos is not None:
        handles.append(pos.register_forward_hook(out_hook("hook_pos_embed")))
    for l, layer in enumerate(layers):
        handles.append(layer.register_forward_pre_hook(pre_hook(f"blocks.{l}.hook_resid_pre"), with_kwargs=True))
        handles.append(layer.register_forward_hook(out_hook(f"blocks.{l}.hook_resid_post")))
        for kind, (mod, how) in hook_modules(family, layer).items():
            name = f"blocks.{l}.hook_{kind}"
            if how == "out":
                handles.append(mod.register_forward_hook(out_hook(name)))
            else:
                handles.append(mod.register_forward_pre_hook(pre_hook(name), with_kwargs=True))
    handles.append(fnorm.register_forward_pre_hook(pre_hook("final_in"), with_kwargs=True))
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    for h in handles:
        h.remove()
    x = acts.pop("final_in")
    if isinstance(fnorm, torch.nn.LayerNorm):
        acts["ln_final.hook_normalized"] = F.layer_norm(x, x.shape[-1:], None, None, fnorm.eps)
    else:
        eps = getattr(fnorm, "eps", None) or getattr(fnorm, "variance_epsilon")
        acts["ln_final.hook_normalized"] = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    D = x.shape[-1]
    if "hook_pos_embed" in acts:  # [1, T, D]: the same for every sequence
        acts["hook_pos_embed"] = acts["hook_pos_embed"].expand(B, T, D)
    return {k: v.reshape(-1, D).numpy() for k, v in acts.items()}, logits


def spliced(model, family, ids, hook):
    D = model.config.hidden_size
    shift = 0.25 * ((torch.arange(D, dtype=torch.float64) % 5) - 2)
    lp = [torch.log_softmax(run(model, family, ids, e)[1], dim=-1)
          for e in (None, (hook, lambda t: t * 0.5 + shift), (hook, torch.zeros_like))]
    tgt = ids[:, 1:].unsqueeze(-1)
    ce = [float(-l[:, :-1].gather(-1, tgt).sum()) for l in lp]
    p = lp[0].exp()
    kl = [float((p * (lp[0] - l)).sum()) for l in lp[1:]]
    return {"clean": ce[0], "spliced": ce[1], "zero": ce[2], "kl_spliced": kl[0], "kl_zero": kl[1], "n": int(tgt.numel())}


def logit_effects(model, family, d, seed, F_=6, L=5):
    """Direct logit effects of random decoder rows through the final norm's weight (LayerNorm:
    the centred row; Gemma: 1 + w), the unembedding and the final soft-capping, from the
    transformers model's own parameters. Writes d/w_dec.f32 ([F, D] float32)."""
    D = model.config.hidden_size
    w = torch.randn(F_, D, generator=torch.Generator().manual_seed(seed + 2), dtype=torch.float64).float()
    w.numpy().astype("<f4").tofile(os.path.join(d, "w_dec.f32"))
    fnorm = modules(model, family)[4]
    u = w.double()
    if isinstance(fnorm, torch.nn.LayerNorm):
        u = u - u.mean(dim=1, keepdim=True)
    g = fnorm.weight.detach().double()
    u = u * ((1.0 + g) if family.startswith("gemma") else g)
    e = u @ model.get_output_embeddings().weight.detach().double().T
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        e = cap * torch.tanh(e / cap)
    e = e.numpy()
    ids = np.arange(e.shape[1])
    top = [np.lexsort((ids, -r))[:L].tolist() for r in e]
    bottom = [np.lexsort((ids, r))[:L].tolist() for r in e]
    return {"top_ids": top, "top_values": [r[t].tolist() for r, t in zip(e, top)],
            "bottom_ids": bottom, "bottom_values": [r[b].tolist() for r, b in zip(e, bottom)]}


def build_one(name, spec, root, seed):
    d = os.path.join(root, name)
    mdir = os.path.join(d, "model")
    os.makedirs(os.path.join(d, "ref"))
    family = name[:-4] if name.endswith("_seq") else name
    cfg = getattr(tf, spec["cls"])(**spec["kw"])
    cfg._attn_implementation = "eager"
    model = tf.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
    randomize(model, seed, family.startswith("gemma"))
    model.to(getattr(torch, spec["dtype"]))
    saved = model.model if spec.get("base_model") else model
    saved.save_pretrained(mdir, max_shard_size=spec.get("shard", "5GB"))
    if spec.get("old_keys"):
        old_style(os.path.join(mdir, "config.json"), spec["old_keys"])
    # The reference reads the saved files back, as a user would.
    ref = tf.AutoModelForCausalLM.from_pretrained(mdir, dtype=torch.float64, attn_implementation="eager").eval()
    g = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(0, cfg.vocab_size, (B, T), generator=g)
    ids[:, 0] = cfg.bos_token_id if cfg.bos_token_id is not None else 0
    ids.numpy().astype("<i4").tofile(os.path.join(d, "tokens.i32"))
    acts, logits = run(ref, family, ids)
    for k, v in acts.items():
        np.save(os.path.join(d, "ref", k + ".npy"), v)
    np.save(os.path.join(d, "ref", "logits.npy"), logits.reshape(B * T, -1).numpy())
    json.dump(spliced(ref, family, ids, spec["edit"]), open(os.path.join(d, "ref", "spliced.json"), "w"))
    json.dump(logit_effects(ref, family, d, seed), open(os.path.join(d, "ref", "logit.json"), "w"))
    open(os.path.join(d, "edit_hook.txt"), "w").write(spec["edit"])


def build():
    src = open(os.path.abspath(__file__), "rb").read()
    key = hashlib.sha256(src + tf.__version__.encode() + torch.__version__.encode()).hexdigest()[:12]
    cache = os.environ.get("SAEPIPE_VENV_ROOT", os.path.expanduser("~/.cache/saepipe"))
    root = os.path.join(cache, "hf-families-" + key)
    if not os.path.exists(os.path.join(root, ".complete")):
        tmp = root + f".tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        torch.manual_seed(0)
        for i, (name, spec) in enumerate(FAMILIES.items()):
            build_one(name, spec, tmp, 100 + i)
        open(os.path.join(tmp, "models.txt"), "w").write("\n".join(FAMILIES) + "\n")
        open(os.path.join(tmp, ".complete"), "w").write("")
        shutil.rmtree(root, ignore_errors=True)
        os.rename(tmp, root)
    print(root)


def rel(a, b):
    return float(np.abs(a.astype(np.float64) - b).max() / max(np.abs(b).max(), 1e-30))


def check(fix, out):
    ok = True
    for name in open(os.path.join(fix, "models.txt")).read().split():
        d, o = os.path.join(fix, name), os.path.join(out, name)
        hooks = json.load(open(os.path.join(o, "hooks.json")))
        want = sorted(f[:-4] for f in os.listdir(os.path.join(d, "ref")) if f.endswith(".npy") and f != "logits.npy")
        worst, bad = 0.0, []
        if sorted(hooks) != want:
            bad.append(f"hook set {sorted(set(hooks) ^ set(want))} differs")
        for h in hooks:
            ref = np.load(os.path.join(d, "ref", h + ".npy"))
            got = np.fromfile(os.path.join(o, h + ".f32"), dtype="<f4").reshape(ref.shape)
            r = rel(got, ref)
            worst = max(worst, r)
            if not r <= TOL:
                bad.append(f"{h} {r:.2e}")
        ref = np.load(os.path.join(d, "ref", "logits.npy"))
        got = np.fromfile(os.path.join(o, "logits.f32"), dtype="<f4").reshape(ref.shape)
        rl = rel(got, ref)
        if not rl <= TOL:
            bad.append(f"logits {rl:.2e}")
        rs, gs = json.load(open(os.path.join(d, "ref", "spliced.json"))), json.load(open(os.path.join(o, "spliced.json")))
        for k in ("clean", "spliced", "zero", "kl_spliced", "kl_zero"):
            e = abs(gs[k] - rs[k]) / max(abs(rs[k]), 1e-12)
            if not e <= TOL:
                bad.append(f"{k} loss {gs[k]:.6g} vs {rs[k]:.6g}")
        if gs["n"] != rs["n"]:
            bad.append("prediction count")
        rl_, gl_ = json.load(open(os.path.join(d, "ref", "logit.json"))), json.load(open(os.path.join(o, "logit.json")))
        for k in ("top", "bottom"):
            if gl_[k + "_ids"] != rl_[k + "_ids"]:
                bad.append(f"logit effect {k} ids")
            gv, rv = np.array(gl_[k + "_values"]), np.array(rl_[k + "_values"])
            if not np.abs(gv - rv).max() <= TOL * max(np.abs(rv).max(), 1e-30):
                bad.append(f"logit effect {k} values {np.abs(gv - rv).max():.2e}")
        status = "ok" if not bad else "FAIL " + "; ".join(bad)
        print(f"{name}: {len(hooks)} hooks (worst {worst:.1e}), logits {rl:.1e}, CE clean/spliced/zero "
              f"{gs['clean'] / gs['n']:.4f}/{gs['spliced'] / gs['n']:.4f}/{gs['zero'] / gs['n']:.4f}: {status}")
        ok &= not bad
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    if sys.argv[1] == "build":
        build()
    else:
        check(sys.argv[2], sys.argv[3])
