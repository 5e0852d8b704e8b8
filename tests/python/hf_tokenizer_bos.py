#!/usr/bin/env python3
"""Whether a model's tokenizer starts a text with BOS, as transformers' AutoTokenizer decides it,
for saepipe's harvest.prepend_bos = "auto" (pipeline/model/tokenizer_bos.hpp).

  hf_tokenizer_bos.py build DIR     writes DIR/<case>/ (tokenizer.json and/or vocab.json +
                                    merges.txt, tokenizer_config.json, config.json) in the
                                    layouts the families ship, and DIR/expected.json:
                                    {case: {"adds": bool, "id": int} or {"error": why}};
                                    prints the case names
  hf_tokenizer_bos.py check DIR CASE OUT   compares the probe's OUT ({"adds", "id"}) with it

The expected value is transformers' own: the ids AutoTokenizer puts before the text's ids with
add_special_tokens=True. Where tokenizer_config.json's add_bos_token contradicts tokenizer.json
(transformers 4 followed the first, 5 follows the second) saepipe refuses (exit 2): those cases
expect an error, and the check prints what transformers 5 did.
"""
import json
import os
import shutil
import sys
import warnings

warnings.filterwarnings("ignore")
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402

SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<s>"]  # Gemma's order (<bos> is id 2); Llama 2's <s> elsewhere (4)


def base():
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(["hello world, this is a test of the tokenizer"] * 5,
                            trainers.BpeTrainer(vocab_size=300, special_tokens=SPECIALS, show_progress=False,
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return tok


def template(bos="<bos>"):
    return processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                         special_tokens=[(bos, SPECIALS.index(bos))])


POST = {
    "template": template(),
    "template_s": template("<s>"),
    "template_eos": processors.TemplateProcessing(single="$A <eos>", special_tokens=[("<eos>", 1)]),
    "bytelevel": processors.ByteLevel(),
    "sequence": processors.Sequence([processors.ByteLevel(), template("<s>")]),
    "null": None,
}

# name: (post-processor or "vocab" (vocab.json + merges.txt, no tokenizer.json), tokenizer_config or None, model_type, saepipe refuses)
CASES = {
    "llama3": ("sequence", {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>"}, "llama", False),
    "llama2": ("template_s", {"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "bos_token": "<s>"}, "llama", False),
    "gemma": ("template", {"tokenizer_class": "GemmaTokenizer", "add_bos_token": True, "add_eos_token": False,
                           "bos_token": "<bos>", "unk_token": "<unk>", "pad_token": "<pad>"}, "gemma2", False),
    "qwen2": ("bytelevel", {"tokenizer_class": "Qwen2Tokenizer", "bos_token": None}, "qwen2", False),
    "neox_template": ("template", {"tokenizer_class": "GPTNeoXTokenizer", "bos_token": "<bos>"}, "gpt_neox", False),
    "neox_bytelevel": ("bytelevel", {"tokenizer_class": "GPTNeoXTokenizer", "bos_token": "<bos>"}, "gpt_neox", False),
    "no_config": ("template", None, "llama", False),
    "null_post": ("null", {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<bos>"}, "llama", False),
    "eos_only": ("template_eos", {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<bos>"}, "llama", False),
    "gpt2_vocab": ("vocab", {"tokenizer_class": "GPT2Tokenizer", "bos_token": "<bos>"}, "gpt2", False),
    "gpt2_vocab_bos": ("vocab", {"tokenizer_class": "GPT2Tokenizer", "add_bos_token": True, "bos_token": "<s>"}, "gpt2", False),
    "contradict_false": ("template", {"tokenizer_class": "LlamaTokenizer", "add_bos_token": False, "bos_token": "<bos>"}, "llama", True),
    "contradict_true": ("null", {"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "bos_token": "<bos>"}, "llama", True),
}


def transformers_prefix(d):
    import transformers
    transformers.logging.set_verbosity_error()
    t = transformers.AutoTokenizer.from_pretrained(d)
    with_special = t("hello world").input_ids
    plain = t("hello world", add_special_tokens=False).input_ids
    n = len(with_special) - len(plain)
    for k in range(n + 1):  # where the text's ids sit among the special ones
        if with_special[k:k + len(plain)] == plain:
            return with_special[:k]
    raise AssertionError(f"{d}: {with_special} does not hold {plain}")


def build(root):
    expected = {}
    for name, (post, cfg, model_type, refuses) in CASES.items():
        d = os.path.join(root, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        tok = base()
        if post == "vocab":
            j = json.loads(tok.to_str())
            json.dump(j["model"]["vocab"], open(os.path.join(d, "vocab.json"), "w"))
            merges = [" ".join(m) if isinstance(m, list) else m for m in j["model"]["merges"]]
            open(os.path.join(d, "merges.txt"), "w").write("#version: 0.2\n" + "\n".join(merges) + "\n")
        else:
            tok.post_processor = POST[post]
            tok.save(os.path.join(d, "tokenizer.json"))
        if cfg is not None:
            json.dump(cfg, open(os.path.join(d, "tokenizer_config.json"), "w"))
        json.dump({"model_type": model_type, "bos_token_id": 2, "eos_token_id": 1}, open(os.path.join(d, "config.json"), "w"))
        prefix = transformers_prefix(d)
        assert len(prefix) <= 1, f"{name}: transformers puts {prefix} before the text"
        got = {"adds": bool(prefix), "id": prefix[0] if prefix else -1}
        expected[name] = {"error": "add_bos_token contradicts tokenizer.json", "transformers5": got} if refuses else got
    empty = os.path.join(root, "no_files")
    shutil.rmtree(empty, ignore_errors=True)
    os.makedirs(empty)
    json.dump({"model_type": "llama", "bos_token_id": 2}, open(os.path.join(empty, "config.json"), "w"))
    expected["no_files"] = {"error": "no tokenizer files"}
    json.dump(expected, open(os.path.join(root, "expected.json"), "w"), indent=1)
    print(" ".join(expected))


def check(root, name, out):
    want = json.load(open(os.path.join(root, "expected.json")))[name]
    got = json.load(open(out))
    ok = got == want
    print(f"{name}: saepipe {got}, transformers {want}: {'ok' if ok else 'MISMATCH'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    build(sys.argv[2]) if sys.argv[1] == "build" else check(sys.argv[2], sys.argv[3], sys.argv[4])
