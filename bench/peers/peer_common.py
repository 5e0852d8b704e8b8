"""What every peer script shares (they run in the venv of scripts/python_env.sh): the thread
count, the batch already in memory, the dead-latent rule, clocks that wait for the GPU, and the
JSON they write for bench/report.py (which takes the median of the steps after the warm-up)."""
import json
import platform
import time


def setup_torch(threads, device):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if device == "cuda":
        # fp32 means fp32, as in saepipe's fp32 mode (a peer that turns TF32 on itself, as
        # sparsify's Trainer.fit does, is reported with that).
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return torch


def load_batch(path, d, device):
    """The float32 [batch, d] raw file every implementation trains on."""
    import numpy as np
    import torch

    x = np.fromfile(path, dtype="<f4").reshape(-1, d)
    return torch.from_numpy(x).to(device)


def dead_latents(n_latents, fraction):
    """Latent f starts dead when (f * 997) mod 1000 < 1000 * fraction (bench_step_timed.cpp's rule)."""
    import torch

    per_mille = round(fraction * 1000)
    return (torch.arange(n_latents) * 997) % 1000 < per_mille


def clock(device):
    """Wall seconds, after the GPU's queued work has finished."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def versions(*names):
    from importlib.metadata import version

    out = {"python": platform.python_version()}
    for n in names:
        out[n] = version(n)
    return out


def write(path, result):
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
