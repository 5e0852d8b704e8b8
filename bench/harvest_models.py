"""The harvest benchmark's models: one entry per family, its shape as Hugging Face config
fields (bench/peers/make_model.py writes a random model of that shape with transformers), the
hooked block, and a small shape for --quick. Only the blocks up to the hooked one are written:
the later ones never run in either implementation. A new family is one more entry (saepipe
must load its model_type: pipeline/model/).

Forward FLOPs per token (the harvest's bound, at the measured sgemm peak) are counted from
`dims`: the projections and the MLP (2 FLOPs per weight), and causal attention's scores and
weighted sum (2 * 2 * heads * head_dim per earlier position, (T + 1) / 2 positions on
average). Norms, embeddings and elementwise work are not counted."""

# dims: d model width, heads / kv_heads / head_dim attention, ffn MLP width, gated (SwiGLU /
# GeGLU: three matrices) or not (two). The config writes hook_layer + 1 blocks. Optional:
# n_seq / batch (sequences measured / per forward pass, for a large shape), save_dtype (the
# weights on disk; both implementations compute in float32), note (said in the report).
MODELS = [
    {
        "name": "GPT-2 small",
        "model_type": "gpt2",
        "hook_layer": 8,
        "dims": {"d": 768, "heads": 12, "kv_heads": 12, "head_dim": 64, "ffn": 3072, "gated": False},
        "config": {"n_embd": 768, "n_head": 12, "n_layer": 9, "vocab_size": 50257, "n_positions": 1024},
        "quick": {
            "hook_layer": 1,
            "dims": {"d": 64, "heads": 4, "kv_heads": 4, "head_dim": 16, "ffn": 256, "gated": False},
            "config": {"n_embd": 64, "n_head": 4, "n_layer": 2, "vocab_size": 512, "n_positions": 128},
        },
    },
    {
        "name": "SmolLM2-135M (Llama)",
        "model_type": "llama",
        "hook_layer": 29,  # every block runs
        "dims": {"d": 576, "heads": 9, "kv_heads": 3, "head_dim": 64, "ffn": 1536, "gated": True},
        "config": {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
                   "num_key_value_heads": 3, "vocab_size": 49152, "max_position_embeddings": 8192,
                   "rms_norm_eps": 1e-5, "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2,
                   "rope_parameters": {"rope_type": "default", "rope_theta": 100000.0}},
        "quick": {
            "hook_layer": 1,
            "dims": {"d": 64, "heads": 4, "kv_heads": 2, "head_dim": 16, "ffn": 128, "gated": True},
            "config": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                       "num_key_value_heads": 2, "vocab_size": 512, "tie_word_embeddings": True},
        },
    },
    {
        "name": "Gemma-2-2B cut after block 12",
        "model_type": "gemma2",
        "hook_layer": 12,  # 13 of its 26 blocks (Gemma Scope's layer 12; jobs/ example): local and global attention
        "dims": {"d": 2304, "heads": 8, "kv_heads": 4, "head_dim": 256, "ffn": 9216, "gated": True},
        "config": {"hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 13, "num_attention_heads": 8,
                   "num_key_value_heads": 4, "head_dim": 256, "query_pre_attn_scalar": 256, "sliding_window": 4096,
                   "vocab_size": 256000, "max_position_embeddings": 8192},
        "n_seq": 16, "batch": 4, "save_dtype": "bfloat16",
        "note": "Weights stored as bfloat16 (vocabulary 256000), computed in float32 by both.",
        "quick": {
            "hook_layer": 1,
            "dims": {"d": 64, "heads": 4, "kv_heads": 2, "head_dim": 16, "ffn": 128, "gated": True},
            "config": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                       "num_key_value_heads": 2, "head_dim": 16, "query_pre_attn_scalar": 16, "sliding_window": 64,
                       "vocab_size": 512},
        },
    },
]


def entry(model, quick):
    """The entry with its --quick shape applied when quick."""
    return {**model, **model["quick"]} if quick else model


def forward_flops_per_token(dims, layers, context):
    d, h, kv, hd, ffn = dims["d"], dims["heads"], dims["kv_heads"], dims["head_dim"], dims["ffn"]
    proj = 2 * d * h * hd + 2 * 2 * d * kv * hd + 2 * h * hd * d     # q, k and v, o
    attn = 2 * 2 * h * hd * (context + 1) / 2                         # scores + weighted sum, causal
    mlp = (3 if dims["gated"] else 2) * 2 * d * ffn
    return layers * (proj + attn + mlp)
