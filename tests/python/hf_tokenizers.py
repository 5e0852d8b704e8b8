#!/usr/bin/env python3
"""tokenizer.json files of the kinds the model families ship, built here with the `tokenizers`
package (trained on a small corpus), and its encode/decode as the reference for saepipe's reader.

  hf_tokenizers.py build DIR            writes DIR/<kind>/tokenizer.json, DIR/<kind>/cases.json
                                        and DIR/<kind>/expected.json; prints the kinds
  hf_tokenizers.py check DIR KIND OUT   compares OUT (tests/tools/tokenizer_probe.cpp) with
                                        expected.json; exit 1 on a mismatch

Kinds: llama3 (Split with Llama 3's regex + ByteLevel, ignore_merges), qwen2 (NFC, Qwen's regex),
neox (NFC, ByteLevel with GPT-2's regex), llama2 (Prepend + Replace "▁", byte fallback, fused
unk), metaspace (Metaspace prepend_scheme "first", byte fallback, as Mistral v0.3 / Gemma
conversions); each with special and added tokens.
"""
import json
import os
import random
import sys

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from tokenizers import AddedToken

LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

CORPUS = [
    "The quick brown fox jumps over the lazy dog. It's a test: we've seen 123 dogs, they'll run.",
    "Sparse autoencoders find features in the residual stream of transformers; features are directions.",
    "Numbers like 2026, 3.14159 and 1,000,000 appear; so do   double  spaces\tand tabs.",
    "Ünïcödé text, naïve café, Ελληνικά, русский текст and a few more words here.",
    "def f(x):\n    return x * 2  # code\n\n\nclass A:\n    pass\n",
    "I'D say YOU'RE right!! Don't worry -- it'll be fine... OK?",
] * 20

TEXTS = [
    "Hello world", " leading space", "   three leading", "trailing   ", "", " ", "\n", "\n\n\n", "\t\tTabs\tand\ttabs",
    "It's we'LL they'RE I'd", "12345 67 8 3.14159 1,000,000", "café naïve Ünïcödé", "e\u0301 and \u00e9",  # NFC
    "東京タワー 中文 한국어", "emoji 🙂👍🏽🇫🇷 zwj 👨‍👩‍👧", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math", "nbsp\u00a0here\u3000ideo",
    "<|end_of_text|>", "a<|end_of_text|>b <|begin_of_text|> c", "<s>Hello</s> <unk>", "x <extra>  y",
    "line\r\nbreak\rcr", "  \n  mixed \n\n whitespace  ", "ABC'sDEF don't", "---===+++***", "x² ½ Ⅻ ⑦",
    "\x0b\x1c control", "ⓐⓑⓒ", "Ω≈ç√∫˜µ≤≥÷", "0123456789" * 3,
    # Added-token flags (ADDED): single_word, lstrip/rstrip, normalized (matched after NFC or
    # the "▁" normalizers, as the token's content normalized).
    "word words sword word_x word. (word) éword wordé 1word", "a  [R]  b[R]c \u3000[R]\u3000", "x<norm>y x <norm> y",
    "E\u0301 É ÉÉ", " <extra> <extra><extra>", "a <n> b a<n>b <n>", "<s><norm>word<n>",
]
# Added tokens with every flag, to each kind: (content, special, normalized, lstrip, rstrip, single_word).
ADDED = [("word", False, False, False, False, True), ("[R]", False, True, True, True, False),
         ("<norm>", False, True, False, False, False), ("É", False, True, False, False, False),
         ("<n>", True, True, False, False, False)]


def add_flagged(tok):
    tok.add_tokens([AddedToken(c, special=sp, normalized=n, lstrip=l, rstrip=r, single_word=w)
                    for c, sp, n, l, r, w in ADDED])


def base_trainer(special):
    return trainers.BpeTrainer(vocab_size=700, special_tokens=special, show_progress=False,
                               initial_alphabet=pre_tokenizers.ByteLevel.alphabet())


def byte_level(kind):
    tok = Tokenizer(models.BPE(ignore_merges=(kind == "llama3")))
    if kind == "neox":
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    else:
        if kind == "qwen2":
            tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3 if kind == "llama3" else QWEN2), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, base_trainer(["<|begin_of_text|>", "<|end_of_text|>"]))
    tok.add_tokens([AddedToken("<extra>", lstrip=True, rstrip=False, normalized=False)])
    return tok


def sentencepiece(kind):
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    if kind == "llama2":
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
        tok.decoder = decoders.Sequence([decoders.Metaspace(replacement="▁", prepend_scheme="first"),
                                         decoders.ByteFallback(), decoders.Fuse()])
    trainer = trainers.BpeTrainer(vocab_size=500, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    tok.train_from_iterator(CORPUS if kind != "llama2" else [c.replace(" ", "▁") for c in CORPUS], trainer)
    # SentencePiece vocabularies carry the 256 byte tokens <0x00>..<0xFF> as ordinary entries.
    j = json.loads(tok.to_str())
    vocab = j["model"]["vocab"]
    for b in range(256):
        name = f"<0x{b:02X}>"
        if name not in vocab:
            vocab[name] = len(vocab)
    tok = Tokenizer.from_str(json.dumps(j))
    tok.add_special_tokens([AddedToken("<extra>", rstrip=True, normalized=False)])
    return tok


def build(d):
    kinds = ["llama3", "qwen2", "neox", "llama2", "metaspace"]
    rng = random.Random(7)
    for kind in kinds:
        tok = byte_level(kind) if kind in ("llama3", "qwen2", "neox") else sentencepiece(kind)
        add_flagged(tok)
        os.makedirs(os.path.join(d, kind), exist_ok=True)
        tok.save(os.path.join(d, kind, "tokenizer.json"))
        texts = TEXTS + ["".join(rng.choice(TEXTS) for _ in range(6)) for _ in range(40)]
        ids = [tok.encode(t, add_special_tokens=False).ids for t in texts]
        V = tok.get_vocab_size(with_added_tokens=True)
        dec_ids = ids + [[rng.randrange(V) for _ in range(rng.randrange(1, 12))] for _ in range(200)]
        decoded = [tok.decode(x, skip_special_tokens=False) for x in dec_ids]
        json.dump({"texts": texts, "decode": dec_ids}, open(os.path.join(d, kind, "cases.json"), "w"))
        json.dump({"ids": ids, "decoded": decoded}, open(os.path.join(d, kind, "expected.json"), "w"))
    print(" ".join(kinds))


def check(d, kind, out):
    cases = json.load(open(os.path.join(d, kind, "cases.json")))
    want = json.load(open(os.path.join(d, kind, "expected.json")))
    got = json.load(open(out))
    bad = 0
    for t, a, b in zip(cases["texts"], got["ids"], want["ids"]):
        if a != b:
            bad += 1
            if bad <= 3:
                print(f"{kind}: encode {t!r}: saepipe {a} tokenizers {b}")
    n_enc = len(cases["texts"])
    for ids, a, b in zip(cases["decode"], got["decoded"], want["decoded"]):
        if a != b:
            bad += 1
            if bad <= 6:
                print(f"{kind}: decode {ids}: saepipe {a!r} tokenizers {b!r}")
    # The interpret site's text of each token: concatenating the tokens of an encoded text gives
    # the text back (byte-level) or the text with spaces as the tokenizer marks them (SentencePiece).
    tb = [bytes.fromhex(h) for h in got["token_bytes"]]
    for t, ids in zip(cases["texts"], want["ids"]):
        joined = b"".join(tb[i] for i in ids).decode("utf-8", errors="replace")
        ref = Tokenizer.from_file(os.path.join(d, kind, "tokenizer.json")).decode(ids, skip_special_tokens=False)
        if joined.strip() != ref.strip() and kind in ("llama3", "qwen2", "neox"):
            bad += 1
            if bad <= 8:
                print(f"{kind}: token bytes of {t!r} join to {joined!r}, decode gives {ref!r}")
    print(f"{kind}: {n_enc} encodes, {len(cases['decode'])} decodes: {'ok' if not bad else f'{bad} mismatches'}")
    sys.exit(0 if not bad else 1)


if __name__ == "__main__":
    if sys.argv[1] == "build":
        build(sys.argv[2])
    else:
        check(sys.argv[2], sys.argv[3], sys.argv[4])
