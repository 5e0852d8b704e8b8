"""Writes a randomly initialised model of a given shape with Hugging Face transformers itself
(AutoConfig.for_model + AutoModelForCausalLM.from_config + save_pretrained: the layout any
checkpoint of that family has), and the token ids the harvest benchmark feeds to every
implementation:
  DIR/ids.i32     int32 [n_seq, context], BOS first, the rest uniform in [0, vocab - 1)
  DIR/tokens.npy  int32, the same sequences without their BOS, end to end (the harvest
                  stage's token file; it prepends BOS itself)

  make_model.py DIR --model-type gpt2 --config '{"n_embd": 768, ...}' --n-seq 16 --context 128
"""
import argparse
import json
import os

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--model-type", required=True)
    ap.add_argument("--config", required=True, help="JSON: the config fields that set the shape")
    ap.add_argument("--n-seq", type=int, required=True)
    ap.add_argument("--context", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-dtype", default="float32", choices=["float32", "bfloat16"],
                    help="the weights' dtype on disk (both implementations compute in float32)")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    fields = json.loads(a.config)
    cfg = AutoConfig.for_model(a.model_type, **fields)
    if cfg.bos_token_id is None or cfg.bos_token_id >= cfg.vocab_size:  # a small test vocabulary
        cfg = AutoConfig.for_model(a.model_type, **{**fields, "bos_token_id": cfg.vocab_size - 1,
                                                   "eos_token_id": cfg.vocab_size - 1})
    model = AutoModelForCausalLM.from_config(cfg, dtype=getattr(torch, a.save_dtype))
    model.save_pretrained(a.dir)
    bos = cfg.bos_token_id
    rng = np.random.default_rng(a.seed + 1)
    ids = rng.integers(0, cfg.vocab_size - 1, size=(a.n_seq, a.context)).astype("<i4")
    ids[:, 0] = bos
    ids.tofile(os.path.join(a.dir, "ids.i32"))
    np.save(os.path.join(a.dir, "tokens.npy"), np.ascontiguousarray(ids[:, 1:]).reshape(-1))


if __name__ == "__main__":
    main()
