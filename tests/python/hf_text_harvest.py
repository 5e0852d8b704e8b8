#!/usr/bin/env python3
"""Text and JSONL harvest through a model's tokenizer.json, against transformers itself.

  hf_text_harvest.py prepare FIX_MODEL OUT    copies a tiny model (tests/python/hf_families.py)
                                              to OUT/model with a SentencePiece-style tokenizer.json
                                              (trained here with `tokenizers`, BOS template, added
                                              tokens) and writes OUT/corpus.txt, OUT/corpus.jsonl
  hf_text_harvest.py check MODEL STORE FORMAT INPUT
                                              AutoTokenizer's ids of INPUT (JSONL documents joined
                                              by config.json's eos_token_id), cut as saepipe cuts
                                              them ([BOS] + context - 1 tokens, the BOS the
                                              tokenizer prepends), against the store's tokens, and
                                              AutoModelForCausalLM's hidden states (float64)
                                              against its blocks.L.hook_resid_post; exit 1 on a
                                              mismatch
"""
import json
import os
import random
import shutil
import sys
import warnings

warnings.filterwarnings("ignore")
import numpy as np  # noqa: E402

WORDS = ["the", "model", "reads", "text", "and", "writes", "activations", "sparse", "features", "of", "a", "residual",
         "stream", "Hello", "WORLD", "12", "345", "x=y", "don't", "café", "東京", "🙂", "<extra>", "[R]", "  ", "\t", "\n"]


def prepare(fix_model, out):
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors, trainers
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(fix_model, os.path.join(out, "model"))
    cfg = json.load(open(os.path.join(out, "model", "config.json")))
    rng = random.Random(11)
    docs = [" ".join(rng.choice(WORDS) for _ in range(rng.randrange(5, 60))) for _ in range(120)]
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tok.train_from_iterator([d.replace(" ", "▁") for d in docs], trainers.BpeTrainer(
        vocab_size=cfg["vocab_size"] - 4, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False))
    assert tok.token_to_id("<s>") == cfg["bos_token_id"] and tok.token_to_id("</s>") == cfg["eos_token_id"]
    tok.add_special_tokens([AddedToken("<extra>", normalized=False)])
    tok.add_tokens([AddedToken("[R]", lstrip=True, rstrip=True, normalized=True)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    assert tok.get_vocab_size(with_added_tokens=True) <= cfg["vocab_size"]
    tok.save(os.path.join(out, "model", "tokenizer.json"))
    json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
              open(os.path.join(out, "model", "tokenizer_config.json"), "w"))
    open(os.path.join(out, "corpus.txt"), "w", encoding="utf-8").write("\n".join(docs))
    with open(os.path.join(out, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for i, d in enumerate(docs):
            f.write(json.dumps({"id": i, "text": d}) + "\n")


def check(model_dir, store, fmt, path):
    import h5py
    import torch
    import transformers as tf
    tf.logging.set_verbosity_error()
    tf.utils.logging.disable_progress_bar()
    tok = tf.AutoTokenizer.from_pretrained(model_dir)
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    if fmt == "text":
        ids = tok(open(path, encoding="utf-8").read(), add_special_tokens=False).input_ids
    else:
        ids = []
        for line in open(path, encoding="utf-8"):
            if ids:
                ids.append(cfg["eos_token_id"])
            ids += tok(json.loads(line)["text"], add_special_tokens=False).input_ids
    bos = tok("x").input_ids[0]  # what the tokenizer prepends (its template: <s> $A)
    man = json.load(open(os.path.join(store, "manifest.json")))
    src, T = man["source"], man["context"]
    f = h5py.File(os.path.join(store, "activations.h5"), "r")
    stored = f["tokens"][...].reshape(-1, T).astype(np.int64)
    n = stored.shape[0]
    want = np.concatenate([np.full((n, 1), bos), np.array(ids[: n * (T - 1)]).reshape(n, T - 1)], axis=1)
    ok = bool(src["prepend_bos"]) and src["bos_token"] == bos and np.array_equal(stored, want)
    print(f"{fmt}: {n} sequences, BOS {src['bos_token']} (prepend_bos {src['prepend_bos']}): "
          f"tokens {'equal' if ok else 'DIFFER'} to AutoTokenizer's")
    model = tf.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64).eval()
    with torch.no_grad():
        hs = model(torch.tensor(want), output_hidden_states=True).hidden_states
    for hook in man["hooks"]:
        layer = int(hook.split(".")[1])
        assert hook == f"blocks.{layer}.hook_resid_post" and layer + 1 < len(hs) - 1
        ref = hs[layer + 1].reshape(n * T, -1).numpy()
        got = f["activations/" + hook][...].astype(np.float64)
        rel = float(np.abs(got - ref).max() / np.abs(ref).max())
        print(f"{fmt}: {hook} within {rel:.1e} relative of transformers")
        ok &= rel <= 1e-5
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    prepare(sys.argv[2], sys.argv[3]) if sys.argv[1] == "prepare" else check(*sys.argv[2:6])
