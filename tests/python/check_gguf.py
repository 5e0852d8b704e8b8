"""The GGUF reader (pipeline/model/gguf) against gguf-py, the package llama.cpp maintains.

  check_gguf.py write DIR            GGUF files made by gguf-py's writer: every metadata type
                                     (arrays of every element type, an array of arrays), tensors
                                     F32/F16/BF16/Q8_0/Q4_0/Q4_1 quantized by gguf.quants, a Q6_K
                                     tensor (listed, not readable), 1-4 dimensions, alignment 32
                                     and 64, and a version-2 copy.
  check_gguf.py compare TOOL FILE [--expect DIR]
                                     `TOOL info FILE` against GGUFReader: version, alignment,
                                     data offset, every key with its type and value, every tensor's
                                     name, dims, type and offset; `TOOL dump FILE` against
                                     gguf.quants.dequantize on every readable tensor, bit for bit.
                                     --expect: also against the values `write` put in (DIR/expect.json).
  check_gguf.py requant FILE OUT     OUT: tensors of the real model FILE (values gguf dequantizes
                                     from its Q4_1, Q8_0 and F32 blocks) re-quantized by gguf.quants
                                     into each readable type, for `compare`: every block type on a
                                     real model's weights, not only on random numbers.
  check_gguf.py llama TOOL FILE      `TOOL llama FILE` against the config transformers builds
                                     from the same file (load_gguf_checkpoint) and gguf-py's
                                     tokenizer fields.
Exit 0 when everything matches; otherwise prints what differs and exits 1.
"""
import json
import os
import subprocess
import sys

import numpy as np
import gguf
from gguf import GGUFReader, GGUFValueType, GGMLQuantizationType as Q

READABLE = {Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1}
TYPE_NAMES = {GGUFValueType.UINT8: "u8", GGUFValueType.INT8: "i8", GGUFValueType.UINT16: "u16",
              GGUFValueType.INT16: "i16", GGUFValueType.UINT32: "u32", GGUFValueType.INT32: "i32",
              GGUFValueType.FLOAT32: "f32", GGUFValueType.BOOL: "bool", GGUFValueType.STRING: "string",
              GGUFValueType.ARRAY: "array", GGUFValueType.UINT64: "u64", GGUFValueType.INT64: "i64",
              GGUFValueType.FLOAT64: "f64"}
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        if len(failures) <= 20:
            print("differs:", what)


# ---- write ----

def write(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(17)
    V = GGUFValueType
    scalars = [("t.u8", 250, V.UINT8), ("t.i8", -128, V.INT8), ("t.u16", 65535, V.UINT16),
               ("t.i16", -32768, V.INT16), ("t.u32", 4294967295, V.UINT32), ("t.i32", -2147483648, V.INT32),
               ("t.f32", 0.1, V.FLOAT32), ("t.bool", True, V.BOOL), ("t.bool0", False, V.BOOL),
               ("t.str", "héllo ▁wörld 🙂", V.STRING), ("t.u64", 2**64 - 1, V.UINT64),
               ("t.i64", -(2**63), V.INT64), ("t.f64", -1e-300, V.FLOAT64)]
    arrays = [("a.u8", [0, 255, 7], V.UINT8), ("a.i8", [-1, 2], V.INT8), ("a.u16", [1, 65535], V.UINT16),
              ("a.i16", [-300, 300], V.INT16), ("a.u32", [3, 4000000000], V.UINT32),
              ("a.i32", [-5, 6, -7], V.INT32), ("a.f32", [1.5, -0.3, 1e30], V.FLOAT32),
              ("a.bool", [True, False, True], V.BOOL), ("a.str", ["a", "", "b c", "Ġthe"], V.STRING),
              ("a.u64", [2**63, 1], V.UINT64), ("a.i64", [-(2**40), 5], V.INT64), ("a.f64", [2.5, -1e-200], V.FLOAT64)]
    nested = [[1, 2, 3], [4], [-5, 6]]  # array of arrays of i32
    tensors = {}
    for align in (32, 64):
        path = os.path.join(out_dir, f"all_align{align}.gguf")
        w = gguf.GGUFWriter(path, "llama")
        if align != 32:
            w.add_custom_alignment(align)
        for key, val, vt in scalars:
            w.add_key_value(key, val, vt)
        for key, val, vt in arrays:
            w.add_key_value(key, val, V.ARRAY, sub_type=vt)
        w.add_key_value("a.nested", nested, V.ARRAY, sub_type=V.ARRAY)
        # Tensors: shapes given row-major (PyTorch order); gguf stores them reversed.
        specs = [("w.f32", (3, 5), Q.F32), ("w.f16", (4, 6), Q.F16), ("w.bf16", (2, 3, 4), Q.BF16),
                 ("w.q8_0", (3, 64), Q.Q8_0), ("w.q4_0", (2, 2, 96), Q.Q4_0), ("w.q4_1", (5, 32), Q.Q4_1),
                 ("w.q4_1_4d", (2, 1, 3, 32), Q.Q4_1), ("v.f32", (7,), Q.F32)]
        for name, shape, qt in specs:
            x = (rng.standard_normal(shape) * rng.uniform(0.01, 3)).astype(np.float32)
            if qt == Q.F32:
                w.add_tensor(name, x)
            elif qt == Q.F16:
                w.add_tensor(name, x.astype(np.float16))
            else:
                q = gguf.quants.quantize(x, qt)
                w.add_tensor(name, q, raw_shape=q.shape if qt == Q.BF16 else None, raw_dtype=qt)
            tensors[name] = list(shape)
        # A Q6_K tensor (raw blocks): listed with its size, refused when read.
        w.add_tensor("w.q6_k", rng.integers(0, 256, (2, 210), dtype=np.uint8), raw_dtype=Q.Q6_K)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
    # Version 2: the layout is version 3's (v3 only added big-endian files).
    data = bytearray(open(os.path.join(out_dir, "all_align32.gguf"), "rb").read())
    assert data[4:8] == (3).to_bytes(4, "little")
    data[4:8] = (2).to_bytes(4, "little")
    open(os.path.join(out_dir, "all_v2.gguf"), "wb").write(bytes(data))
    expect = {"scalars": [[k, v, TYPE_NAMES[t]] for k, v, t in scalars],
              "arrays": [[k, v, TYPE_NAMES[t]] for k, v, t in arrays], "nested": nested, "tensors": tensors}
    json.dump(expect, open(os.path.join(out_dir, "expect.json"), "w"))


def requant(real, out_path):
    r = GGUFReader(real)
    by_name = {t.name: t for t in r.tensors}
    # A Q/K weight (Q4_1 in the file), 512 embedding rows (Q8_0) and a norm weight (F32).
    picks = [("blk.0.attn_q.weight", None), ("token_embd.weight", 512), ("blk.0.attn_norm.weight", None)]
    w = gguf.GGUFWriter(out_path, "llama")
    for name, rows in picks:
        t = by_name[name]
        check(t.tensor_type in (Q.Q4_1, Q.Q8_0, Q.F32), f"{name} is {t.tensor_type.name} in {real}")
        x = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
        x = np.ascontiguousarray(x[:rows] if rows else x)
        for qt in sorted(READABLE):
            tag = f"{name}.{qt.name.lower()}"
            if qt == Q.F32:
                w.add_tensor(tag, x)
            elif qt == Q.F16:
                w.add_tensor(tag, x.astype(np.float16))
            else:
                q = gguf.quants.quantize(x, qt)
                w.add_tensor(tag, q, raw_shape=q.shape if qt == Q.BF16 else None, raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---- compare ----

def field_value(f):
    """A reader field as (type name, element type name or None, python value)."""
    main = f.types[0]
    if main == GGUFValueType.ARRAY:
        sub = f.types[-1]
        if len(f.types) > 2:  # arrays of arrays: contents() does not handle them
            return "array", "array", None
        if sub == GGUFValueType.STRING:
            return "array", "string", f.contents()
        vals = [f.parts[i].tolist()[0] for i in f.data] if f.data != [-1] else []
        return "array", TYPE_NAMES[sub], vals
    if main == GGUFValueType.STRING:
        return "string", None, f.contents()
    return TYPE_NAMES[main], None, f.parts[f.data[0]].tolist()[0]


def same_number(tname, ours, theirs):
    if tname == "f32":
        return np.float32(ours) == np.float32(theirs)
    if tname == "bool":
        return bool(ours) == bool(theirs)
    return ours == theirs


def compare(tool, path, expect_dir=None):
    info = json.loads(subprocess.run([tool, "info", path], check=True, capture_output=True).stdout)
    r = GGUFReader(path)
    check(info["version"] == int(r.fields["GGUF.version"].parts[-1][0]), "version")
    check(info["alignment"] == r.alignment, f"alignment {info['alignment']} vs {r.alignment}")
    check(info["data_offset"] == r.data_offset, f"data offset {info['data_offset']} vs {r.data_offset}")
    theirs = [(k, f) for k, f in r.fields.items() if not k.startswith("GGUF.")]
    check([e["key"] for e in info["metadata"]] == [k for k, _ in theirs], "metadata keys or their order")
    for e, (k, f) in zip(info["metadata"], theirs):
        tname, ename, val = field_value(f)
        check(e["type"] == tname, f"{k}: type {e['type']} vs {tname}")
        if tname != "array":
            check(same_number(tname, e["value"], val) if tname != "string" else e["value"] == val,
                  f"{k}: {str(e['value'])[:80]} vs {str(val)[:80]}")
            continue
        check(e["element"] == ename, f"{k}: element type {e['element']} vs {ename}")
        if ename == "array":
            continue  # checked against the written values below
        check(len(e["value"]) == len(val), f"{k}: {len(e['value'])} elements vs {len(val)}")
        bad = [i for i, (a, b) in enumerate(zip(e["value"], val))
               if not (a == b if ename == "string" else same_number(ename, a, b))]
        check(not bad, f"{k}: {len(bad)} elements differ, first at {bad[:1]}")
    # Tensors: infos, then the data, bit for bit.
    check([t["name"] for t in info["tensors"]] == [t.name for t in r.tensors], "tensor names or order")
    for ours, t in zip(info["tensors"], r.tensors):
        check(ours["ne"] == [int(d) for d in t.shape], f"{t.name}: ne {ours['ne']} vs {list(t.shape)}")
        check(ours["type"] == int(t.tensor_type), f"{t.name}: type {ours['type']} vs {int(t.tensor_type)}")
        check(ours["offset"] + r.data_offset == t.data_offset, f"{t.name}: offset")
        check(ours["n_bytes"] == t.n_bytes, f"{t.name}: {ours['n_bytes']} bytes vs {t.n_bytes}")
    dump = subprocess.Popen([tool, "dump", path], stdout=subprocess.PIPE)
    counts = {}
    for t in r.tensors:
        if t.tensor_type not in READABLE:
            continue
        ref = np.ascontiguousarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(-1)
        n = int(np.prod([int(d) for d in t.shape]))
        got = np.frombuffer(dump.stdout.read(4 * n), dtype=np.float32)
        check(got.size == n and ref.size == n, f"{t.name}: {got.size} values dumped, {ref.size} from gguf, {n} expected")
        if got.size == n and ref.size == n:
            diff = np.count_nonzero(got.view(np.uint32) != ref.view(np.uint32))
            check(diff == 0, f"{t.name} ({t.tensor_type.name}): {diff} of {n} values differ from gguf's dequantize, "
                  f"max |diff| {np.max(np.abs(got - ref)) if diff else 0}")
        counts[t.tensor_type.name] = counts.get(t.tensor_type.name, 0) + 1
    check(dump.stdout.read() == b"" and dump.wait() == 0, "dump: trailing bytes or non-zero exit")
    print("dequantized bit-identically to gguf:", ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))

    if expect_dir:
        exp = json.load(open(os.path.join(expect_dir, "expect.json")))
        meta = {e["key"]: e for e in info["metadata"]}
        for k, v, tname in exp["scalars"]:
            check(meta[k]["type"] == tname and (same_number(tname, meta[k]["value"], v) if tname != "string"
                                                 else meta[k]["value"] == v), f"{k}: written {v}, read {meta[k]}")
        for k, v, tname in exp["arrays"]:
            got = meta[k]
            check(got["element"] == tname and len(got["value"]) == len(v) and
                  all((a == b) if tname == "string" else same_number(tname, a, b) for a, b in zip(got["value"], v)),
                  f"{k}: written {v}, read {got}")
        nested = meta["a.nested"]
        check(nested["element"] == "array" and [x["value"] for x in nested["value"]] == exp["nested"] and
              all(x["element"] == "i32" for x in nested["value"]), f"a.nested: read {nested}")
        shapes = {t["name"]: t["ne"][::-1] for t in info["tensors"]}
        for name, shape in exp["tensors"].items():
            check(shapes[name] == shape, f"{name}: written shape {shape}, read {shapes[name]}")


# ---- llama ----

def llama(tool, path):
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint
    ours = json.loads(subprocess.run([tool, "llama", path], check=True, capture_output=True).stdout)
    parsed = load_gguf_checkpoint(path, return_tensors=False)
    cfg, tok = parsed["config"], parsed["tokenizer"]
    want = {"n_layers": cfg["num_hidden_layers"], "d_model": cfg["hidden_size"],
            "d_mlp": cfg["intermediate_size"], "n_heads": cfg["num_attention_heads"],
            "n_kv_heads": cfg["num_key_value_heads"], "context_length": cfg["max_position_embeddings"],
            "vocab_size": cfg["vocab_size"]}
    for k, v in want.items():
        check(ours[k] == v, f"{k}: ours {ours[k]}, transformers {v}")
    check(np.float32(ours["rms_eps"]) == np.float32(cfg["rms_norm_eps"]), f"rms_eps {ours['rms_eps']} vs {cfg['rms_norm_eps']}")
    theta = cfg.get("rope_theta", (cfg.get("rope_parameters") or {}).get("rope_theta"))
    check(np.float32(ours["rope_theta"]) == np.float32(theta), f"rope_theta {ours['rope_theta']} vs {theta}")
    check(ours["head_dim"] == cfg.get("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"]), "head_dim")
    t = ours["tokenizer"]
    check(t["tokens"] == tok["tokens"], "tokens")
    check(t["merges"] == tok["merges"], "merges")
    check(t["token_types"] == list(tok["token_type"]), "token types")
    check(t["model"] == tok["tokenizer_type"], f"tokenizer model {t['model']} vs {tok['tokenizer_type']}")
    for ours_key, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"), ("unk", "unk_token_id"),
                          ("pad", "pad_token_id")):
        check(t[ours_key] == tok.get(key, -1), f"{ours_key}: ours {t[ours_key]}, transformers {tok.get(key)}")
    tok_cfg = parsed.get("tokenizer_config", {})
    check(t["add_bos"] == bool(tok_cfg.get("add_bos_token", False)), f"add_bos {t['add_bos']} vs {tok_cfg.get('add_bos_token')}")
    print(f"llama params and tokenizer agree with transformers: {ours['n_layers']} layers, d {ours['d_model']}, "
          f"{ours['n_heads']}/{ours['n_kv_heads']} heads, {len(t['tokens'])} tokens, {len(t['merges'])} merges")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "write":
        write(sys.argv[2])
    elif cmd == "compare":
        compare(sys.argv[2], sys.argv[3], sys.argv[5] if len(sys.argv) > 5 and sys.argv[4] == "--expect" else None)
    elif cmd == "requant":
        requant(sys.argv[2], sys.argv[3])
    elif cmd == "llama":
        llama(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {cmd}")
    if failures:
        print(f"{len(failures)} differences")
        sys.exit(1)
