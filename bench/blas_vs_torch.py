"""The matrix products of one Gemma-2-2B block for 512 tokens (4 sequences of 128), one thread,
the implementations interleaved in one process so that other work on the machine slows each
alike: saepipe's way on the system OpenBLAS (pipeline/model/decoder_ops.cpp: rows in blocks of
128, weights stored [K, O], q|k|v and gate|up as one product each) with the kernels that
OPENBLAS_CORETYPE pins (this project's machines set Haswell, AVX2) and with the kernels
OpenBLAS picks itself for the CPU, next to transformers' (torch.nn.functional.linear, x W^T on
all 512 rows, q, k, v, gate and up apart). The forward's FLOPs are ~95% these products, so
their ratio bounds the harvest's ratio to transformers (bench/report_harvest.py).

    VENV_PY bench/blas_vs_torch.py [--reps 9]

OpenBLAS is switched in place through gotoblas_dynamic_quit/init, which Debian's OpenBLAS
(built for every x86 CPU, the kernels chosen at load time) exports; OPENBLAS_CORETYPE is what
that init reads. On a loaded machine the fastest rounds' ratio is the steadier one."""
import argparse
import ctypes
import statistics
import time

import numpy as np
import torch

D, Q, KV, I, N, ROWS = 2304, 2048, 1024, 9216, 512, 128  # Gemma 2 2B: d_model, q and k/v widths, MLP


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--openblas", default="/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0")
    a = ap.parse_args()
    torch.set_num_threads(1)
    ob = ctypes.CDLL(a.openblas, mode=ctypes.RTLD_GLOBAL)
    ob.openblas_get_corename.restype = ctypes.c_char_p
    ob.openblas_set_num_threads(1)
    libc = ctypes.CDLL(None)
    pinned = ob.openblas_get_corename().decode()

    def use(core):  # None: OpenBLAS's own choice for this CPU
        if core:
            libc.setenv(b"OPENBLAS_CORETYPE", core.encode(), 1)
        else:
            libc.unsetenv(b"OPENBLAS_CORETYPE")
        ob.gotoblas_dynamic_quit()
        ob.gotoblas_dynamic_init()
        return ob.openblas_get_corename().decode()

    shapes = [(D, Q + 2 * KV), (Q, D), (D, 2 * I), (I, D)]  # saepipe's (K, O) per product
    rng = np.random.default_rng(0)
    W = [rng.standard_normal((k, o), dtype=np.float32) for k, o in shapes]
    X = [rng.standard_normal((N, k), dtype=np.float32) for k, _ in shapes]
    C = [np.empty((N, o), dtype=np.float32) for _, o in shapes]
    f32 = ctypes.POINTER(ctypes.c_float)

    def saepipe_block():
        for w, x, c in zip(W, X, C):
            k, o = w.shape
            for r in range(0, N, ROWS):  # CblasRowMajor, NoTrans, NoTrans
                ob.cblas_sgemm(101, 111, 111, ROWS, o, k, ctypes.c_float(1), x[r:].ctypes.data_as(f32), k,
                               w.ctypes.data_as(f32), o, ctypes.c_float(0), c[r:].ctypes.data_as(f32), o)

    tw = [torch.randn(o, k) for k, o in [(D, Q), (D, KV), (D, KV), (Q, D), (D, I), (D, I), (I, D)]]
    tx = {k: torch.randn(N, k) for k in (D, Q, I)}

    def torch_block():
        with torch.inference_mode():
            for w in tw:
                torch.nn.functional.linear(tx[w.shape[1]], w)

    flop = 2 * N * sum(k * o for k, o in shapes)
    runs = {"pinned": (lambda: use(pinned), saepipe_block), "own": (lambda: use(None), saepipe_block),
            "torch": (lambda: f"torch {torch.__version__}", torch_block)}
    seconds, names = {k: [] for k in runs}, {}
    for _ in range(a.reps):
        for key, (setup, fn) in runs.items():
            names[key] = setup()
            t = time.perf_counter()
            fn()
            seconds[key].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in seconds.items()}
    what = {"pinned": "saepipe, OpenBLAS kernels as pinned", "own": "saepipe, OpenBLAS's own kernels",
            "torch": "transformers' linear"}
    for k in runs:
        print(f"{what[k]:38s} {names[k]:20s} {flop / med[k] / 1e9:6.1f} GFLOP/s (median of {a.reps}; "
              f"{flop / max(seconds[k]) / 1e9:.0f}-{flop / min(seconds[k]) / 1e9:.0f}), {med['torch'] / med[k]:.2f}x torch "
              f"(fastest rounds: {min(seconds['torch']) / min(seconds[k]):.2f}x)")


if __name__ == "__main__":
    main()
