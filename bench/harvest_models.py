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
# GeGLU: three matrices) or not (two), layers (= hook_layer + 1, the blocks written and run).
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
