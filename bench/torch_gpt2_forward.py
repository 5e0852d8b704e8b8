#!/usr/bin/env python3
"""The PyTorch side of bench/bench_harvest_gpt2.sh: the reference GPT-2 forward pass
(tests/python/gpt2_reference.py) in float32, stopped after the hooked layer, on the same
sequences saepipe harvests. Prints tokens/s.

  torch_gpt2_forward.py MODEL_DIR TOKENS_NPY N_SEQ CONTEXT BATCH LAYERS_NEEDED [THREADS]
"""
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))
from gpt2_reference import forward, load_weights  # noqa: E402


def main():
    model_dir, tokens, n_seq, T, B, L = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
    torch.set_num_threads(int(sys.argv[7]) if len(sys.argv) > 7 else 2)
    cfg, w = load_weights(model_dir, dtype=torch.float32)
    ids = np.load(tokens)[: n_seq * (T - 1)].reshape(n_seq, T - 1).astype(np.int64)
    ids = np.concatenate([np.full((n_seq, 1), cfg["bos_token_id"]), ids], axis=1)
    ids = torch.tensor(ids)
    with torch.no_grad():
        forward(cfg, w, ids[:B], n_layers=L)  # warm-up
        t0 = time.perf_counter()
        for s in range(0, n_seq, B):
            forward(cfg, w, ids[s:s + B], n_layers=L)
        dt = time.perf_counter() - t0
    print(f"pytorch {torch.__version__} forward ({torch.get_num_threads()} threads): {n_seq * T} tokens in {dt:.2f} s = {n_seq * T / dt:.0f} tokens/s")


if __name__ == "__main__":
    main()
