#!/usr/bin/python3
"""Reads the files the unit test H5py.ReadsOurFiles writes, with h5py (an HDF5 reader independent
of saepipe's code), and checks dtypes, shapes and values against sidecar .npy files.

Layout of DIR: float32/, float16/, bfloat16/ (activation stores: manifest.json, shards,
activations.h5, original_<hook>.npy = the float32 values before storage, tokens.npy, sequence.npy,
position.npy) and sae/ (sae.h5 and <dataset>.npy).

The expected 16-bit values are computed here independently: float16 by numpy's astype, bfloat16 by
choosing the nearer of the two bfloat16 neighbours (ties to the even one).

Usage: check_h5py_reads.py DIR    (exit 0 when every check passes)
"""
import json
import os
import pathlib
import sys

import h5py
import numpy as np

STORED_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


def bf16_round(x):
    x = np.asarray(x, dtype=np.float32)
    u = x.view(np.uint32).astype(np.uint64)
    lo = u & 0xFFFF0000  # truncation toward zero (sign-magnitude)
    hi = lo + 0x10000    # the next bfloat16 away from zero
    v_lo = lo.astype(np.uint32).view(np.float32).astype(np.float64)
    v_hi = hi.astype(np.uint32).view(np.float32).astype(np.float64)
    xd = x.astype(np.float64)
    d_lo, d_hi = np.abs(xd - v_lo), np.abs(v_hi - xd)
    lo_is_odd = ((lo >> 16) & 1) == 1
    pick_hi = (d_hi < d_lo) | ((d_hi == d_lo) & lo_is_odd)
    return np.where(pick_hi, hi, lo).astype(np.uint32).view(np.float32)


def expected(original, dtype):
    if dtype == "float16":
        return original.astype(np.float16).astype(np.float32)
    if dtype == "bfloat16":
        return bf16_round(original)
    return original.astype(np.float32)


def same_bits(what, got, want):
    got = np.ascontiguousarray(got, dtype=np.float32)
    want = np.ascontiguousarray(want, dtype=np.float32)
    if got.shape != want.shape:
        raise AssertionError(f"{what}: shape {got.shape}, expected {want.shape}")
    diff = np.flatnonzero(got.view(np.uint32) != want.view(np.uint32))
    if diff.size:
        i = diff[0]
        raise AssertionError(f"{what}: {diff.size} values differ, first at flat index {i}: "
                             f"{got.flat[i]!r} vs expected {want.flat[i]!r}")


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def check_store(store, dtype):
    m = json.loads((store / "manifest.json").read_text())
    check(m["schema"] == "saepipe.activations" and m["version"] == 1, f"{store}: manifest schema/version")
    check(m["dtype"] == dtype, f"{store}: manifest dtype {m['dtype']}")
    n, d = m["n_tokens"], m["d_model"]
    for hook in m["hooks"]:
        want = expected(np.load(store / f"original_{hook}.npy"), dtype)
        parts = []
        for s in m["shards"]:
            path = store / s["path"]
            with h5py.File(path, "r") as f:
                ds = f["activations/" + hook]
                where = f"{path}: /activations/{hook}"
                check(ds.id.get_type().get_size() == STORED_BYTES[dtype], f"{where}: stored element size")
                check(ds.dtype.kind == "f", f"{where}: h5py dtype {ds.dtype}")
                if dtype == "float16":
                    check(ds.dtype == np.float16, f"{where}: h5py should see IEEE half, got {ds.dtype}")
                check(ds.shape == (s["n_tokens"], d), f"{where}: shape {ds.shape}")
                check(ds.fletcher32 and ds.chunks is not None, f"{where}: chunked with Fletcher32")
                check(f.attrs["schema"] == "saepipe.activations.shard", f"{path}: schema attribute")
                check(int(f.attrs["first_token"]) == s["first_token"], f"{path}: first_token attribute")
                check(f.attrs["dtype"] == dtype, f"{path}: dtype attribute")
                parts.append(ds[...].astype(np.float32))
        same_bits(f"{store}: shards of {hook}", np.concatenate(parts), want)
        with h5py.File(store / "activations.h5", "r") as f:
            v = f["activations/" + hook]
            check(v.is_virtual, f"{store}/activations.h5: /activations/{hook} is not virtual")
            check(v.shape == (n, d), f"{store}/activations.h5: shape {v.shape}")
            same_bits(f"{store}/activations.h5: /activations/{hook}", v[...], want)
            same_bits(f"{store}/activations.h5: rows 65..134", v[65:135], want[65:135])
    with h5py.File(store / "activations.h5", "r") as f:
        for name, dt in (("tokens", np.int32), ("sequence", np.int64), ("position", np.int32)):
            got = f[name][...]
            check(got.dtype == dt, f"{store}/activations.h5: /{name} dtype {got.dtype}")
            check(np.array_equal(got, np.load(store / f"{name}.npy")), f"{store}/activations.h5: /{name} values")


def check_sae(sae_dir):
    path = sae_dir / "sae.h5"
    with h5py.File(path, "r") as f:
        check(f.attrs["schema"] == "saepipe.sae" and int(f.attrs["version"]) == 1, f"{path}: schema/version")
        check(f.attrs["architecture"] == "topk", f"{path}: architecture {f.attrs['architecture']!r}")
        d_in, d_sae = int(f.attrs["d_in"]), int(f.attrs["d_sae"])
        shapes = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,),
                  "threshold": (d_sae,)}
        for name, shape in shapes.items():
            ds = f[name]
            check(ds.dtype == np.float32, f"{path}: /{name} dtype {ds.dtype}")
            check(ds.shape == shape, f"{path}: /{name} shape {ds.shape}, expected {shape}")
            same_bits(f"{path}: /{name}", ds[...], np.load(sae_dir / f"{name}.npy"))


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    root = pathlib.Path(sys.argv[1]).resolve()
    os.chdir("/")  # virtual datasets must find their shards from anywhere
    try:
        for dtype in ("float32", "float16", "bfloat16"):
            check_store(root / dtype, dtype)
        check_sae(root / "sae")
    except (AssertionError, KeyError, OSError) as e:
        print(f"check_h5py_reads: FAILED: {e}", file=sys.stderr)
        return 1
    print(f"check_h5py_reads: h5py {h5py.version.version} (HDF5 {h5py.version.hdf5_version}) read every file as written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
