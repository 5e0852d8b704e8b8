#!/usr/bin/env python3
"""The transformers side of bench/bench_harvest_families.sh, and its model maker.

  torch_families_forward.py make DIR SHAPE     a random model of that shape (bf16 safetensors,
                                               save_pretrained): smollm2-135m (Llama, 30 layers)
                                               or gemma2-2b-13l (Gemma 2 2B cut after layer 12)
  torch_families_forward.py run DIR TOKENS_NPY N_SEQ CONTEXT BATCH THREADS
        transformers' own forward (AutoModel, the base model without the LM head, fp32, its
        default attention) over the same sequences saepipe harvests ([BOS] + CONTEXT-1 tokens);
        prints tokens/s and the peak resident memory after loading.
"""
import resource
import sys
import time

import numpy as np
import torch
import transformers as tf

SHAPES = {
    "smollm2-135m": lambda: tf.LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536,
                                           num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                                           max_position_embeddings=8192, rms_norm_eps=1e-5, tie_word_embeddings=True,
                                           rope_parameters={"rope_type": "default", "rope_theta": 100000.0},
                                           bos_token_id=1, eos_token_id=2),
    "gemma2-2b-13l": lambda: tf.Gemma2Config(vocab_size=256000, hidden_size=2304, intermediate_size=9216,
                                             num_hidden_layers=13, num_attention_heads=8, num_key_value_heads=4,
                                             head_dim=256, query_pre_attn_scalar=256, sliding_window=4096,
                                             max_position_embeddings=8192),
}


def make(d, shape):
    torch.manual_seed(0)
    cfg = SHAPES[shape]()
    with torch.device("cpu"):
        model = tf.AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02)
    model.save_pretrained(d)


def run(d, tokens, n_seq, T, B, threads):
    torch.set_num_threads(threads)
    model = tf.AutoModel.from_pretrained(d, dtype=torch.float32).eval()
    peak_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    bos = model.config.bos_token_id
    ids = np.load(tokens)[: n_seq * (T - 1)].reshape(n_seq, T - 1).astype(np.int64)
    ids = torch.tensor(np.concatenate([np.full((n_seq, 1), bos), ids], axis=1))
    with torch.no_grad():
        model(input_ids=ids[:B])  # warm-up
        t0 = time.perf_counter()
        for s in range(0, n_seq, B):
            model(input_ids=ids[s:s + B])
        dt = time.perf_counter() - t0
    print(f"transformers {tf.__version__} (torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{model.config._attn_implementation} attention): {n_seq * T} tokens in {dt:.1f} s = "
          f"{n_seq * T / dt:.1f} tokens/s; peak RSS after loading {peak_load:.0f} MiB")


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3])
    else:
        run(sys.argv[2], sys.argv[3], *map(int, sys.argv[4:8]))
