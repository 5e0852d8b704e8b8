#!/usr/bin/env python3
"""Writes a random GPT-2 as a Hugging Face model directory, plus token files, for tests and
benchmarks. Real key names and layouts: config.json (model_type gpt2) and model.safetensors
(or shards + model.safetensors.index.json) with wte, wpe, h.{i}.ln_1, attn.c_attn (Conv1D:
weight [in, out]), attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj, ln_f. The safetensors writer is
written here from the format's description, independently of saepipe's reader.

With --bpe, also a small byte-level BPE (vocab.json + merges.txt, learned on a built-in text
with GPT-2's pre-tokenizer) whose last id is <|endoftext|>, used as BOS/EOS.

  make_tiny_gpt2.py DIR [--layers 2 --d 64 --heads 4 --vocab 512 --positions 128]
                        [--dtype F32|F16|BF16] [--shards N] [--prefix transformer.]
                        [--tokens N] [--bpe] [--seed S]
Token files (with --tokens N, ids uniform in [0, vocab-1)): tokens.bin (llm.c), tokens_raw.bin
(uint16), tokens.npy (int32), tokens_u16.npy, tokens.h5 (/tokens int32).
"""
import argparse
import json
import os
import struct

import numpy as np

SAMPLE_TEXT = (
    "The quick brown fox jumps over the lazy dog. It's a test: we've seen 123 dogs, they'll run "
    "and I'd say you're right! Sparse autoencoders find features in the residual stream of "
    "transformers; features are directions. Don't worry -- numbers like 2026 and 3.14 appear too.\n\n"
    "Ünïcödé text, naïve café, 東京 and Ελληνικά, tabs\tand  double  spaces   here.\n"
)


def bf16_bits(a):
    """float32 -> bfloat16 bits, round to nearest even."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return r


def encode_tensor(a, dtype):
    if dtype == "F32":
        return np.ascontiguousarray(a, dtype="<f4").tobytes()
    if dtype == "F16":
        return np.ascontiguousarray(a, dtype="<f2").tobytes()
    if dtype == "BF16":
        return bf16_bits(a).astype("<u2").tobytes()
    raise ValueError(dtype)


def write_safetensors(path, tensors, dtype):
    """tensors: list of (name, float32 array); written in that order."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, a in tensors:
        b = encode_tensor(a, dtype)
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)  # the format pads the header to 8 bytes with spaces
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def random_gpt2(layers, d, vocab, positions, seed):
    rng = np.random.default_rng(seed)
    n = lambda *s, std=0.02: (rng.standard_normal(s) * std).astype(np.float32)
    t = [("wte.weight", n(vocab, d, std=0.1)), ("wpe.weight", n(positions, d, std=0.05))]
    for i in range(layers):
        p = f"h.{i}."
        t += [
            (p + "ln_1.weight", 1 + n(d, std=0.1)), (p + "ln_1.bias", n(d, std=0.05)),
            (p + "attn.c_attn.weight", n(d, 3 * d, std=0.15)), (p + "attn.c_attn.bias", n(3 * d, std=0.05)),
            (p + "attn.c_proj.weight", n(d, d, std=0.1)), (p + "attn.c_proj.bias", n(d, std=0.05)),
            (p + "ln_2.weight", 1 + n(d, std=0.1)), (p + "ln_2.bias", n(d, std=0.05)),
            (p + "mlp.c_fc.weight", n(d, 4 * d, std=0.1)), (p + "mlp.c_fc.bias", n(4 * d, std=0.05)),
            (p + "mlp.c_proj.weight", n(4 * d, d, std=0.05)), (p + "mlp.c_proj.bias", n(d, std=0.05)),
        ]
    t += [("ln_f.weight", 1 + n(d, std=0.1)), ("ln_f.bias", n(d, std=0.05))]
    return t


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def learn_bpe(text, n_merges):
    import regex
    b2u = bytes_to_unicode()
    words = {}
    for piece in regex.findall(GPT2_PATTERN, text):
        w = tuple(b2u[b] for b in piece.encode("utf-8"))
        words[w] = words.get(w, 0) + 1
    merges = []
    for _ in range(n_merges):
        pairs = {}
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + c
        if not pairs:
            break
        best = max(sorted(pairs), key=lambda p: pairs[p])
        merges.append(best)
        new = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] = c
        words = new
    vocab = {}
    for ch in sorted(set(bytes_to_unicode().values()), key=lambda c: ord(c)):
        vocab[ch] = len(vocab)
    for a, b in merges:
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab, merges


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--positions", type=int, default=128)
    ap.add_argument("--dtype", default="F32", choices=["F32", "F16", "BF16"])
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--prefix", default="")
    ap.add_argument("--tokens", type=int, default=0)
    ap.add_argument("--bpe", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)

    eos = a.vocab - 1
    if a.bpe:
        vocab, merges = learn_bpe(SAMPLE_TEXT, 200)
        assert len(vocab) <= a.vocab, "--vocab too small for the BPE"
        eos = vocab["<|endoftext|>"]
        with open(os.path.join(a.dir, "vocab.json"), "w", encoding="utf-8") as f:
            json.dump(vocab, f, ensure_ascii=False)
        with open(os.path.join(a.dir, "merges.txt"), "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n")
            for x, y in merges:
                f.write(f"{x} {y}\n")
    config = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": a.d, "n_layer": a.layers,
              "n_head": a.heads, "n_positions": a.positions, "n_ctx": a.positions, "vocab_size": a.vocab,
              "n_inner": None, "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new",
              "bos_token_id": eos, "eos_token_id": eos, "scale_attn_weights": True}
    with open(os.path.join(a.dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)

    tensors = [(a.prefix + k, v) for k, v in random_gpt2(a.layers, a.d, a.vocab, a.positions, a.seed)]
    if a.shards == 1:
        write_safetensors(os.path.join(a.dir, "model.safetensors"), tensors, a.dtype)
    else:
        groups = np.array_split(np.arange(len(tensors)), a.shards)
        weight_map = {}
        for k, g in enumerate(groups):
            name = f"model-{k + 1:05d}-of-{a.shards:05d}.safetensors"
            write_safetensors(os.path.join(a.dir, name), [tensors[i] for i in g], a.dtype)
            for i in g:
                weight_map[tensors[i][0]] = name
        with open(os.path.join(a.dir, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=2)

    if a.tokens:
        rng = np.random.default_rng(a.seed + 1)
        ids = rng.integers(0, a.vocab - 1, size=a.tokens).astype(np.int64)
        header = np.zeros(256, dtype="<i4")
        header[0], header[1], header[2] = 20240520, 1, a.tokens
        with open(os.path.join(a.dir, "tokens.bin"), "wb") as f:
            f.write(header.tobytes())
            f.write(ids.astype("<u2").tobytes())
        ids.astype("<u2").tofile(os.path.join(a.dir, "tokens_raw.bin"))
        np.save(os.path.join(a.dir, "tokens.npy"), ids.astype("<i4"))
        np.save(os.path.join(a.dir, "tokens_u16.npy"), ids.astype("<u2"))
        import h5py
        with h5py.File(os.path.join(a.dir, "tokens.h5"), "w") as f:
            f["tokens"] = ids.astype(np.int32)


if __name__ == "__main__":
    main()
