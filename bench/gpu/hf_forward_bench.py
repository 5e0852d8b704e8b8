#!/usr/bin/env python3
"""Hugging Face transformers' GPT2Model forward pass on the GPU, timed the way
`saepipe_gpt2_cuda bench` times saepipe's harvest loop, on the same model directory and shapes:
random token ids (BOS first), batches of B sequences of T tokens, 3 warm-up batches.

  hf_forward_bench.py MODEL_DIR [--context 128] [--batch 64] [--layer 8] [--tokens 1048576]
                      [--dtype bf16|fp32] [--attn sdpa|eager] [--json FILE]

Measures, in tokens/s:
  full          model(ids, output_hidden_states=True), every layer (the usual way to harvest)
  truncated     the same with model.h cut after the hooked layer (what saepipe runs)
  truncated+d2h truncated, and hidden_states[layer + 1] copied to host memory each batch (pinned,
                non_blocking, synchronised per batch). (With h cut there, that last hidden state
                has ln_f applied: the same cost as the raw resid_post a harvest would keep.)
Prints one JSON object and appends it to --json.
"""
import argparse
import json
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--layer", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=1 << 20)
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp32", "fp16"])
    ap.add_argument("--attn", default="sdpa")
    ap.add_argument("--json")
    a = ap.parse_args()
    import transformers
    from transformers import GPT2Model

    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32, as in saepipe's fp32 mode
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp16": torch.float16}[a.dtype]
    try:
        model = GPT2Model.from_pretrained(a.model, dtype=dtype, attn_implementation=a.attn)
    except TypeError:
        model = GPT2Model.from_pretrained(a.model, torch_dtype=dtype, attn_implementation=a.attn)
    model = model.cuda().eval()
    cfg = model.config
    B, T = a.batch, a.context
    n_batches = max(1, a.tokens // (B * T))
    g = torch.Generator(device="cpu").manual_seed(1)
    batches = [torch.randint(0, cfg.vocab_size - 1, (B, T), generator=g) for _ in range(4)]
    for b in batches:
        b[:, 0] = cfg.bos_token_id if cfg.bos_token_id is not None else cfg.vocab_size - 1
    batches = [b.cuda() for b in batches]
    out = {"transformers": transformers.__version__, "torch": torch.__version__,
           "device": torch.cuda.get_device_name(), "dtype": a.dtype, "attn": a.attn, "context": T,
           "batch_sequences": B, "layer": a.layer, "tokens_measured": n_batches * B * T}
    full_h = model.h
    host = torch.empty((B, T, cfg.n_embd), dtype=dtype, pin_memory=True)

    def run(name, n_layers, d2h):
        model.h = full_h[:n_layers]
        with torch.no_grad():
            for i in range(3):
                model(input_ids=batches[i % 4], output_hidden_states=True)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for i in range(n_batches):
                hs = model(input_ids=batches[i % 4], output_hidden_states=True).hidden_states
                if d2h:
                    host.copy_(hs[a.layer + 1], non_blocking=True)
                    torch.cuda.synchronize()
            torch.cuda.synchronize()
            dt = time.perf_counter() - t0
        out[name] = {"tokens_per_s": n_batches * B * T / dt, "seconds": dt, "layers_run": n_layers}

    run("full", cfg.n_layer, False)
    run("truncated", a.layer + 1, False)
    run("truncated+d2h", a.layer + 1, True)
    model.h = full_h
    print(json.dumps(out))
    if a.json:
        with open(a.json, "a") as f:
            f.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
