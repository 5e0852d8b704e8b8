#!/usr/bin/env python3
"""Reference GPT-2 byte-level BPE encoder (the algorithm of openai/gpt-2's encoder.py, with the
`regex` module's real \\p{L}/\\p{N} classes), used to check saepipe's tokenizer.

  bpe_reference.py MODEL_DIR STORE_DIR (text|jsonl) INPUT
Encodes INPUT (a text file, or JSONL documents joined by the EOS id), cuts it into the store's
sequences ([BOS] + context-1 tokens) and compares with the store's /tokens. Exit 0 when equal.
"""
import json
import os
import sys

import numpy as np
import regex

PATTERN = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


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


class Encoder:
    def __init__(self, model_dir):
        self.encoder = json.load(open(os.path.join(model_dir, "vocab.json"), encoding="utf-8"))
        lines = open(os.path.join(model_dir, "merges.txt"), encoding="utf-8").read().split("\n")
        merges = [tuple(l.split()) for l in lines[1:] if l]
        self.ranks = dict(zip(merges, range(len(merges))))
        self.b2u = bytes_to_unicode()

    def bpe(self, token):
        word = tuple(token)
        while len(word) > 1:
            pairs = set(zip(word, word[1:]))
            bigram = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if bigram not in self.ranks:
                break
            first, second = bigram
            new, i = [], 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new.extend(word[i:])
                    break
                new.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new.append(first + second)
                    i += 2
                else:
                    new.append(word[i])
                    i += 1
            word = tuple(new)
        return word

    def encode(self, text):
        ids = []
        for piece in PATTERN.findall(text):
            t = "".join(self.b2u[b] for b in piece.encode("utf-8"))
            ids.extend(self.encoder[s] for s in self.bpe(t))
        return ids


def main():
    import h5py
    model_dir, store_dir, kind, path = sys.argv[1:5]
    enc = Encoder(model_dir)
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    if kind == "text":
        ids = enc.encode(open(path, encoding="utf-8", newline="").read())  # keep \r\n as is
    else:
        ids, first = [], True
        for line in open(path, encoding="utf-8"):
            if not line.strip():
                continue
            ids += ([] if first else [cfg["eos_token_id"]]) + enc.encode(json.loads(line)["text"])
            first = False
    man = json.load(open(os.path.join(store_dir, "manifest.json")))
    T = man["context"]
    got = h5py.File(os.path.join(store_dir, "activations.h5"), "r")["tokens"][...]
    n_seq = len(got) // T
    want = np.array(ids[: n_seq * (T - 1)]).reshape(n_seq, T - 1)
    want = np.concatenate([np.full((n_seq, 1), man["source"]["bos_token"]), want], axis=1).reshape(-1)
    same = np.array_equal(got, want)
    print(f"{kind} tokens ({len(ids)} encoded, {len(got)} stored): {'equal' if same else 'DIFFER'}")
    if not same:
        k = int(np.argmax(got != want))
        print(f"first difference at row {k}: saepipe {got[max(0, k - 3):k + 3]} reference {want[max(0, k - 3):k + 3]}")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
