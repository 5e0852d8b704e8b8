"""A GGUF model in saepipe against transformers loading the same file (from_pretrained(dir,
gguf_file=...), which dequantizes with gguf-py), in float64 with eager attention as the
reference (tests/python/hf_families.py's hooks, logits and spliced losses).

  check_gguf_model.py tokens GGUF JSONL N_DOCS OUT
        OUT.i32: the first N_DOCS documents of JSONL encoded by transformers' tokenizer of the
        file, joined by the EOS id (what harvest stores for a JSONL input without BOS)
  check_gguf_model.py tokenizer GGUF TOOL PROBE JSONL WORK
        saepipe's tokenizer of the file (TOOL tokenizer GGUF, run by PROBE, tests/tools) against
        transformers' tokenizer of the same file: ids of every JSONL document and of tricky
        texts (digits, unicode, whitespace runs, special tokens in the text), decode, and each
        token's bytes; then the same on copies of the file's tokenizer with tokenizer.ggml.pre
        set to gpt2, llama-bpe and qwen2 (transformers splits those with the matching regex)
  check_gguf_model.py probe GGUF TOKENS B T PROBE_DIR EDIT_HOOK
        saepipe's model_probe outputs in PROBE_DIR (every hook, logits, spliced losses at
        EDIT_HOOK on the B x T int32 TOKENS) against transformers: every hook and the logits
        within 1e-4 relative (max |diff| / max |ref|), the clean, spliced and zero-ablated CE sums
        and the KL sums within 1e-4 relative
  check_gguf_model.py store GGUF STORE_DIR HOOK...
        the harvest store's sequences rebuilt from tokens/sequence/position, run through
        transformers: each listed hook within 1e-4 relative
  check_gguf_model.py probe+store GGUF TOKENS B T PROBE_DIR EDIT_HOOK STORE_DIR HOOK...
        both, with the model loaded once (20 s); prints "probe: ok|FAILED", "store: ok|FAILED"
"""
import functools
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_families  # noqa: E402  (the transformers reference shared with e2e_model_families)

TOL = 1e-4


@functools.lru_cache(maxsize=None)
def load(gguf, dtype=torch.float64):
    import transformers as tf
    tf.logging.set_verbosity_error()
    d, f = os.path.split(os.path.abspath(gguf))
    model = tf.AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=dtype, attn_implementation="eager").eval()
    # transformers 5.24 loads llama GGUF files through its legacy path: every tensor dequantized by
    # gguf-py (Q/K rows un-permuted) into plain parameters of the asked dtype.
    assert all(p.dtype == dtype and type(p) is torch.nn.Parameter for p in model.parameters())
    return model


_FIELDS = {}


def gguf_fields(gguf):
    """The file's tokenizer.ggml.* fields (gguf-py parses the 49k-entry arrays in ~4 s: once per
    file; the copies cmd_tokenizer writes are entered when written)."""
    if gguf not in _FIELDS:
        import gguf as ggufpy
        r = ggufpy.GGUFReader(gguf)
        _FIELDS[gguf] = {k: r.fields[k].contents() for k in r.fields if k.startswith("tokenizer.ggml.")}
    return _FIELDS[gguf]


def tokenizer(gguf, as_llama_cpp=True):
    """transformers' tokenizer of the file. transformers 5.24 maps no pre-tokenizer for
    tokenizer.ggml.pre = "smollm" and falls back to GPT-2's regex; llama.cpp (llama-vocab.cpp)
    splits single digits (\\p{N}) first and then applies GPT-2's regex, as SmolLM2's own
    tokenizer.json does (Digits(individual_digits) + ByteLevel). With as_llama_cpp, that
    pre-tokenizer is set, so the reference tokenizes the way the model was trained."""
    import transformers as tf
    from tokenizers import pre_tokenizers
    tf.logging.set_verbosity_error()
    d, f = os.path.split(os.path.abspath(gguf))
    tok = tf.AutoTokenizer.from_pretrained(d, gguf_file=f)
    if as_llama_cpp and gguf_fields(gguf).get("tokenizer.ggml.pre") == "smollm":
        tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True),
             pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    return tok


def rel(a, b):
    return float(np.abs(a.astype(np.float64) - b).max() / max(np.abs(b).max(), 1e-30))


def cmd_tokens(gguf, jsonl, n_docs, out):
    tok = tokenizer(gguf)
    eos = tok.eos_token_id
    ids = []
    with open(jsonl, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i == n_docs:
                break
            if i:
                ids.append(eos)
            ids.extend(tok(json.loads(line)["text"], add_special_tokens=False)["input_ids"])
    np.asarray(ids, dtype="<i4").tofile(out)
    print(f"{len(ids)} tokens from {min(i + 1, n_docs)} documents, EOS {eos}")


TRICKY = ["The year 2024, pi = 3.14159 and 1,000,000 items.", "  leading and   inner   spaces  ", "tabs\tand\r\nCRLF\n\n\n",
          "café naïve e\u0301 東京 Ελληνικά 🙂🙂 x² ½ Ⅻ", "It's they'll we've I'D you're don't", "a<|im_start|>user\nhi<|im_end|>b",
          "<|endoftext|><|endoftext|>", "\u00a0nbsp\u3000ideo \u2028", "ABC'sDEF 123abc456 $5.00 #hash @user", "x" * 300,
          "1234567890 12 345", "!!! ??? ... --- ***"]


def compare_tokenizer(gguf, tool, probe, texts, work, tag):
    import subprocess
    tok = tokenizer(gguf)
    tj, cases, out = (os.path.join(work, f"{tag}.{x}.json") for x in ("tokenizer", "cases", "out"))
    with open(tj, "wb") as f:
        subprocess.run([tool, "tokenizer", gguf], check=True, stdout=f)
    ref = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    decode_cases = ref[:50]
    json.dump({"texts": texts, "decode": decode_cases}, open(cases, "w"))
    subprocess.run([probe, tj, cases, out], check=True)
    got = json.load(open(out))
    bad = [i for i, (a, b) in enumerate(zip(got["ids"], ref)) if a != b]
    for i in bad[:3]:
        print(f"{tag}: text {texts[i][:60]!r}: ours {got['ids'][i][:20]}, transformers {ref[i][:20]}")
    dec_bad = sum(a != tok.decode(ids) for a, ids in zip(got["decoded"], decode_cases))
    # Each token's bytes: transformers' token string through GPT-2's byte decoder.
    from transformers.convert_slow_tokenizer import bytes_to_unicode
    byte_of = {c: b for b, c in bytes_to_unicode().items()}
    vocab = tok.convert_ids_to_tokens(list(range(len(got["token_bytes"]))))
    want = [bytes(byte_of[c] for c in t).hex() if all(c in byte_of for c in t) else t.encode().hex() for t in vocab]
    bytes_bad = sum(a != b for a, b in zip(got["token_bytes"], want))
    n_tok = sum(len(r) for r in ref)
    if tag == "file":  # how far transformers' own (unmapped "smollm") GGUF tokenizer is from it
        plain = tokenizer(gguf, as_llama_cpp=False)
        n_plain = sum(plain(t, add_special_tokens=False)["input_ids"] != r for t, r in zip(texts, ref))
        print(f"{tag}: transformers' GGUF tokenizer without llama.cpp's digit split differs on {n_plain} of {len(texts)} texts")
    print(f"{tag}: {len(texts)} texts, {n_tok} tokens: {len(bad)} texts differ; decode: {dec_bad} of {len(decode_cases)} "
          f"differ; token bytes: {bytes_bad} of {len(want)} differ")
    return not bad and not dec_bad and not bytes_bad and len(got["ids"]) == len(texts)


def cmd_tokenizer(gguf, tool, probe, jsonl, work):
    import gguf as ggufpy
    texts = [json.loads(line)["text"] for line in open(jsonl, encoding="utf-8")] + TRICKY
    ok = compare_tokenizer(gguf, tool, probe, texts, work, "file")
    # The same vocabulary under other pre-tokenizer names, in metadata-only copies.
    fields = gguf_fields(gguf)
    for pre in ("gpt2", "llama-bpe", "qwen2"):
        path = os.path.join(work, f"pre_{pre}.gguf")
        w = ggufpy.GGUFWriter(path, "llama")
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre)
        w.add_token_list(fields["tokenizer.ggml.tokens"])
        w.add_token_types(fields["tokenizer.ggml.token_type"])
        w.add_token_merges(fields["tokenizer.ggml.merges"])
        w.add_bos_token_id(fields["tokenizer.ggml.bos_token_id"])
        w.add_eos_token_id(fields["tokenizer.ggml.eos_token_id"])
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        _FIELDS[path] = {**fields, "tokenizer.ggml.pre": pre}
        ok &= compare_tokenizer(path, tool, probe, texts[:2000] + TRICKY, work, "pre " + pre)
    return ok


def cmd_probe(gguf, tokens, B, T, probe, edit_hook):
    hf_families.B, hf_families.T = B, T
    ids = torch.from_numpy(np.fromfile(tokens, dtype="<i4").astype(np.int64).reshape(B, T))
    model = load(gguf)
    acts, logits = hf_families.run(model, "llama", ids)
    hooks = json.load(open(os.path.join(probe, "hooks.json")))
    bad, worst = [], 0.0
    if sorted(hooks) != sorted(acts):
        bad.append(f"hook sets differ: {sorted(set(hooks) ^ set(acts))}")
    for h in hooks:
        got = np.fromfile(os.path.join(probe, h + ".f32"), dtype="<f4").reshape(acts[h].shape)
        r = rel(got, acts[h])
        worst = max(worst, r)
        if not r <= TOL:
            bad.append(f"{h} {r:.2e}")
    ref = logits.reshape(B * T, -1).numpy()
    got = np.fromfile(os.path.join(probe, "logits.f32"), dtype="<f4").reshape(ref.shape)
    rl = rel(got, ref)
    if not rl <= TOL:
        bad.append(f"logits {rl:.2e}")
    rs = hf_families.spliced(model, "llama", ids, edit_hook)
    gs = json.load(open(os.path.join(probe, "spliced.json")))
    for k in ("clean", "spliced", "zero", "kl_spliced", "kl_zero"):
        e = abs(gs[k] - rs[k]) / max(abs(rs[k]), 1e-12)
        if not e <= TOL:
            bad.append(f"{k} {gs[k]:.8g} vs {rs[k]:.8g} ({e:.1e})")
    if gs["n"] != rs["n"]:
        bad.append("prediction count")
    n = rs["n"]
    print(f"{len(hooks)} hooks (worst {worst:.1e}), logits {rl:.1e}; CE per token clean {gs['clean'] / n:.5f} "
          f"(transformers {rs['clean'] / n:.5f}), spliced {gs['spliced'] / n:.5f} ({rs['spliced'] / n:.5f}), "
          f"zero {gs['zero'] / n:.5f} ({rs['zero'] / n:.5f})")
    for b in bad:
        print("differs:", b)
    return not bad


def store_sequences(store):
    import h5py
    f = h5py.File(os.path.join(store, "activations.h5"), "r")
    seq, pos, tok = f["sequence"][...], f["position"][...], f["tokens"][...]
    return f, seq, pos, tok


def cmd_store(gguf, store, hooks):
    """The stored rows of each sequence, rebuilt from tokens/sequence/position (plus the BOS id at
    position 0 when the store excludes it), run through transformers."""
    f, seq, pos, tok = store_sequences(store)
    src = json.load(open(os.path.join(store, "manifest.json")))["source"]
    skip = 1 if src.get("exclude_bos") else 0
    assert not skip or src.get("prepend_bos"), "a store without position 0 needs prepend_bos to rebuild it"
    T = json.load(open(os.path.join(store, "manifest.json")))["context"] + skip
    order = np.lexsort((pos, seq))
    seq, pos, tok = seq[order], pos[order], tok[order]
    seqs = np.unique(seq)
    model = load(gguf)
    ok = True
    stored = {h: f["activations/" + h][...][order] for h in hooks}
    worst = {h: 0.0 for h in hooks}
    for start in range(0, len(seqs), 8):
        chunk = seqs[start:start + 8]
        rows = np.isin(seq, chunk)
        ids = np.zeros((len(chunk), T), dtype=np.int64)
        for i, s_ in enumerate(chunk):
            m = seq == s_
            assert np.array_equal(pos[m], np.arange(skip, T)), f"sequence {s_}: positions {pos[m]}"
            ids[i, skip:] = tok[m]
            if skip:
                ids[i, 0] = src["bos_token"]
        hf_families.B, hf_families.T = len(chunk), T
        acts, _ = hf_families.run(model, "llama", torch.from_numpy(ids))
        for h in hooks:
            ref = acts[h].reshape(len(chunk), T, -1)[:, skip:].reshape(-1, acts[h].shape[-1])
            worst[h] = max(worst[h], rel(stored[h][rows], ref))
    for h in hooks:
        print(f"{h}: {len(seqs)} sequences, {len(stored[h])} rows, max rel {worst[h]:.1e}")
        ok &= worst[h] <= TOL
    return ok


if __name__ == "__main__":
    c = sys.argv[1]
    if c == "tokens":
        cmd_tokens(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
        ok = True
    elif c == "tokenizer":
        ok = cmd_tokenizer(*sys.argv[2:7])
    elif c == "probe":
        ok = cmd_probe(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7])
    elif c == "store":
        ok = cmd_store(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif c == "probe+store":
        ok_probe = cmd_probe(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7])
        print("probe:", "ok" if ok_probe else "FAILED")
        ok_store = cmd_store(sys.argv[2], sys.argv[8], sys.argv[9:])
        print("store:", "ok" if ok_store else "FAILED")
        ok = ok_probe and ok_store
    else:
        sys.exit(f"unknown command {c}")
    sys.exit(0 if ok else 1)
