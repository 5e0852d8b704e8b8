"""Reference for bench_stats.sh: one pass of a plain PyTorch TopK encode with per-latent fire
counts and maxima (a subset of what the stats stage computes in each of its two passes), over
random activations of the same shape. Prints tokens/s."""
import argparse, time, warnings
warnings.filterwarnings("ignore")
import torch

p = argparse.ArgumentParser()
p.add_argument("--d", type=int, required=True)
p.add_argument("--f", type=int, required=True)
p.add_argument("--k", type=int, required=True)
p.add_argument("--tokens", type=int, required=True)
p.add_argument("--batch", type=int, default=4096)
a = p.parse_args()
torch.manual_seed(0)
W = torch.randn(a.d, a.f) / a.d ** 0.5
b = torch.zeros(a.f)
x = torch.randn(a.batch, a.d)
count = torch.zeros(a.f, dtype=torch.int64)
mx = torch.zeros(a.f)
with torch.no_grad():
    t0 = time.perf_counter()
    done = 0
    while done < a.tokens:
        v, i = torch.topk(x @ W + b, a.k, dim=1)
        v = v.relu()
        count += torch.bincount(i.flatten(), weights=(v.flatten() > 0).double(), minlength=a.f).long()
        mx.scatter_reduce_(0, i.flatten(), v.flatten(), reduce="amax")
        done += a.batch
    print(f"{done / (time.perf_counter() - t0):.1f}")
