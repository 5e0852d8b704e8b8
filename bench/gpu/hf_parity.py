#!/usr/bin/env python3
"""saepipe's CUDA GPT-2 (saepipe_gpt2_cuda dump) against Hugging Face transformers' GPT2Model on
the same random weights, at every hook point. Written for the GPU machine (transformers and
torch there); bench/gpu/run_all.sh runs it.

  hf_parity.py --tool BIN/saepipe_gpt2_cuda --work DIR [--shapes small,gpt2s]
               [--precisions fp32,bf16] [--reference hf|local] [--device cuda] [--json OUT]

For each shape a random model is written here (the scales of tests/gpu/test_cuda_gpt2.cpp: each
matrix with std 1/sqrt(fan_in), so every sublayer moves the residual by O(1) and attention is
not saturated; the safetensors writer of tests/python/make_tiny_gpt2.py); the reference runs
it in float64 (HF GPT2Model with eager attention, or with --reference local the repository's own
tests/python/gpt2_reference.py, which needs no transformers), and for scale the same reference
in float32 and bfloat16 is compared with float64 too. The tool's `--cpu` dump (saepipe's CPU
model) is compared as well: the GPU and the CPU must agree with the same reference.

Rule, per hook: tensor error = max |ours - ref| / max |ref| (the rule of
tests/python/gpt2_reference.py); fp32 passes at <= 1e-5 (--fp32-tol), bf16 / fp16 at <= 1e-2
(--half-tol). The element error max |ours - ref| / (|ref| + rms(ref)) is printed too (the fp32
rule of tests/gpu/test_cuda_gpt2.cpp); on these weights (make_tiny_gpt2.py's, with sharp
attention) float32 itself reaches ~7e-5 on it, hence not gated here. Hooks in
HF terms: hook_embed = wte(ids), hook_pos_embed = wpe(positions), resid_pre = output_hidden_states
[l], attn_out = h[l].attn output, resid_mid = input of h[l].ln_2, mlp_out = h[l].mlp output,
resid_post = h[l] output, ln_final.hook_normalized = layer_norm(input of ln_f) without its affine
map. Exit 0 when every gated comparison passes.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))

SHAPES = {
    # name: (layers, d, heads, vocab, positions, B, T, hooks: "all" or a list)
    "small": (4, 256, 4, 1000, 256, 4, 128, "all"),
    "gpt2s": (12, 768, 12, 50257, 1024, 2, 1024,
              ["hook_embed", "hook_pos_embed", "blocks.0.hook_attn_out", "blocks.0.hook_mlp_out",
               "blocks.8.hook_resid_mid", "blocks.8.hook_attn_out", "blocks.8.hook_mlp_out"]
              + [f"blocks.{l}.hook_resid_post" for l in range(12)] + ["ln_final.hook_normalized"]),
}


def all_hooks(L):
    h = ["hook_embed", "hook_pos_embed"]
    for l in range(L):
        h += [f"blocks.{l}.{k}" for k in
              ("hook_resid_pre", "hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post")]
    return h + ["ln_final.hook_normalized"]


def write_model(mdir, L, d, H, V, P, seed):
    sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
    from make_tiny_gpt2 import write_safetensors
    rng = np.random.default_rng(seed)

    def n(*shape, std=1.0, base=0.0):
        return (base + rng.standard_normal(shape) * std).astype(np.float32)

    I, wc = 4 * d, 1 / math.sqrt(d)
    t = [("wte.weight", n(V, d, std=0.5)), ("wpe.weight", n(P, d, std=0.2))]
    for l in range(L):
        p = f"h.{l}."
        t += [(p + "ln_1.weight", n(d, std=0.1, base=1)), (p + "ln_1.bias", n(d, std=0.1)),
              (p + "attn.c_attn.weight", n(d, 3 * d, std=wc)), (p + "attn.c_attn.bias", n(3 * d, std=0.1)),
              (p + "attn.c_proj.weight", n(d, d, std=wc)), (p + "attn.c_proj.bias", n(d, std=0.1)),
              (p + "ln_2.weight", n(d, std=0.1, base=1)), (p + "ln_2.bias", n(d, std=0.1)),
              (p + "mlp.c_fc.weight", n(d, I, std=wc)), (p + "mlp.c_fc.bias", n(I, std=0.1)),
              (p + "mlp.c_proj.weight", n(I, d, std=1 / math.sqrt(I))), (p + "mlp.c_proj.bias", n(d, std=0.1))]
    t += [("ln_f.weight", n(d, std=0.1, base=1)), ("ln_f.bias", n(d, std=0.1))]
    os.makedirs(mdir, exist_ok=True)
    cfg = {"model_type": "gpt2", "architectures": ["GPT2Model"], "n_embd": d, "n_layer": L, "n_head": H,
           "n_positions": P, "n_ctx": P, "vocab_size": V, "n_inner": None, "layer_norm_epsilon": 1e-5,
           "activation_function": "gelu_new", "bos_token_id": V - 1, "eos_token_id": V - 1,
           "scale_attn_weights": True}
    with open(os.path.join(mdir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    write_safetensors(os.path.join(mdir, "model.safetensors"), t, "F32")


def hf_reference(model_dir, ids, dtype, device):
    from transformers import GPT2Model
    kw = {"attn_implementation": "eager"}
    try:
        model = GPT2Model.from_pretrained(model_dir, dtype=dtype, **kw)
    except TypeError:  # older transformers: torch_dtype
        model = GPT2Model.from_pretrained(model_dir, torch_dtype=dtype, **kw)
    model = model.to(device).eval()
    L, eps = model.config.n_layer, model.config.layer_norm_epsilon
    acts, handles = {}, []

    def first(out):
        return out[0] if isinstance(out, (tuple, list)) else out

    def on_out(name):
        return lambda mod, inp, out: acts.__setitem__(name, first(out).detach())

    def on_in(name):
        def pre(mod, args, kwargs):
            x = args[0] if args else kwargs.get("hidden_states", kwargs.get("input"))
            acts[name] = x.detach()
        return pre

    handles.append(model.wte.register_forward_hook(on_out("hook_embed")))
    handles.append(model.wpe.register_forward_hook(on_out("hook_pos_embed")))
    for l, blk in enumerate(model.h):
        handles.append(blk.attn.register_forward_hook(on_out(f"blocks.{l}.hook_attn_out")))
        handles.append(blk.ln_2.register_forward_pre_hook(on_in(f"blocks.{l}.hook_resid_mid"), with_kwargs=True))
        handles.append(blk.mlp.register_forward_hook(on_out(f"blocks.{l}.hook_mlp_out")))
        handles.append(blk.register_forward_hook(on_out(f"blocks.{l}.hook_resid_post")))
    handles.append(model.ln_f.register_forward_pre_hook(on_in("ln_f_input"), with_kwargs=True))
    with torch.no_grad():
        out = model(input_ids=torch.tensor(ids, device=device), output_hidden_states=True)
    for h in handles:
        h.remove()
    for l in range(L):
        acts[f"blocks.{l}.hook_resid_pre"] = out.hidden_states[l]
    B, T = ids.shape
    acts["hook_pos_embed"] = acts["hook_pos_embed"].expand(B, T, -1)
    x = acts.pop("ln_f_input")
    acts["ln_final.hook_normalized"] = F.layer_norm(x, (x.shape[-1],), None, None, eps)
    # output_hidden_states and the block hooks should tell the same story.
    for l in range(L - 1):
        if not torch.equal(out.hidden_states[l + 1], acts[f"blocks.{l}.hook_resid_post"]):
            print(f"  warning: hidden_states[{l + 1}] differs from the output of h[{l}]")
    return {k: v.double().cpu().numpy() for k, v in acts.items()}


def local_reference(model_dir, ids, dtype, device):
    sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
    from gpt2_reference import forward, load_weights
    cfg, w = load_weights(model_dir, dtype=dtype)
    with torch.no_grad():
        acts = forward(cfg, w, torch.tensor(ids))
    return {k: v.double().numpy() for k, v in acts.items()}


def err(ours, ref):
    """(tensor error, element error) of ours against ref."""
    if not ref.size:
        return 0.0, 0.0
    d = np.abs(ours - ref)
    rms = math.sqrt(float(np.mean(ref * ref)))
    return float(d.max() / (np.abs(ref).max() + 1e-30)), float(np.max(d / (np.abs(ref) + rms + 1e-30)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--shapes", default="small,gpt2s")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--reference", default="hf", choices=["hf", "local"])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--fp32-tol", type=float, default=1e-5)
    ap.add_argument("--half-tol", type=float, default=1e-2)
    ap.add_argument("--no-cpu", action="store_true", help="skip saepipe's CPU model")
    ap.add_argument("--no-gpu", action="store_true", help="only saepipe's CPU model (checks this script)")
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    os.makedirs(a.work, exist_ok=True)
    ok, report = True, []
    if a.reference == "hf":
        import transformers
        print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    reference = hf_reference if a.reference == "hf" else local_reference
    ref_device = a.device if a.reference == "hf" else "cpu"
    for shape in a.shapes.split(","):
        L, d, H, V, P, B, T, hooks = SHAPES[shape]
        hooks = all_hooks(L) if hooks == "all" else hooks
        mdir = os.path.join(a.work, f"model_{shape}")
        if not os.path.exists(os.path.join(mdir, "model.safetensors")):
            write_model(mdir, L, d, H, V, P, seed=7)
        rng = np.random.default_rng(3)
        ids = rng.integers(0, V - 1, size=(B, T)).astype(np.int32)
        ids[:, 0] = V - 1  # BOS
        tok = os.path.join(a.work, f"tokens_{shape}.i32")
        ids.tofile(tok)
        t0 = time.time()
        ref = reference(mdir, ids.astype(np.int64), torch.float64, ref_device)
        print(f"[{shape}] L={L} d={d} H={H} V={V} B={B} T={T}: {a.reference} float64 reference in {time.time() - t0:.1f} s")
        runs = {}
        for dt_name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            r = reference(mdir, ids.astype(np.int64), dt, ref_device)
            runs[f"{a.reference}-{dt_name} (scale)"] = (r, None)
        variants = [] if a.no_gpu else [(p, ["--precision", p]) for p in a.precisions.split(",")]
        if not a.no_gpu and "fp32" in a.precisions.split(","):
            variants.append(("fp32", ["--precision", "fp32", "--unfused"]))
        if not a.no_cpu:
            variants.append(("fp32", ["--cpu"]))
        for prec, flags in variants:
            prefix = os.path.join(a.work, f"out_{shape}")
            cmd = [a.tool, "dump", "--model", mdir, "--tokens", tok, "--batch", str(B), "--context", str(T),
                   "--hooks", ",".join(hooks), "--out", prefix] + flags
            t0 = time.time()
            p = subprocess.run(cmd, capture_output=True, text=True)
            name = "saepipe " + ("cpu" if "--cpu" in flags else "cuda " + prec + (" unfused" if "--unfused" in flags else ""))
            if p.returncode != 0:
                print(f"  {name}: FAILED (exit {p.returncode})\n{p.stderr}")
                ok = False
                report.append({"shape": shape, "run": name, "error": p.stderr[-2000:]})
                continue
            if p.stderr.strip():
                print("  " + p.stderr.strip().replace("\n", "\n  "))
            got = {h: np.fromfile(f"{prefix}.{k}.f32", dtype=np.float32).reshape(B, T, d) for k, h in enumerate(hooks)}
            runs[name] = (got, a.fp32_tol if prec == "fp32" else a.half_tol)
            print(f"  {name}: ran in {time.time() - t0:.1f} s")
        for name, (got, tol) in runs.items():
            both = {h: err(np.asarray(got[h], dtype=np.float64), ref[h]) for h in hooks}
            errs = {h: e[0] for h, e in both.items()}
            worst_h = max(errs, key=errs.get)
            worst_el = max(e[1] for e in both.values())
            passed = tol is None or errs[worst_h] <= tol
            ok = ok and passed
            status = "(not gated)" if tol is None else ("PASS" if passed else "FAIL") + f" at {tol:g}"
            print(f"  {name:34s} tensor {errs[worst_h]:.2e} at {worst_h:28s} element {worst_el:.2e}  {status}")
            report.append({"shape": shape, "run": name, "tolerance": tol, "passed": passed,
                           "worst_tensor": errs[worst_h], "worst_hook": worst_h, "worst_element": worst_el,
                           "per_hook": {h: {"tensor": e[0], "element": e[1]} for h, e in both.items()}})
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"reference": a.reference, "ok": ok, "results": report}, f, indent=1)
    print("hf_parity:", "all gated comparisons pass" if ok else "SOME COMPARISONS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
