"""The stats stage's peer in bench/bench_stats.sh: a plain torch TopK encode pass with per-latent
fire counts and maxima (a subset of what the stats stage computes; the stage encodes once and
runs its second pass over the first pass's codes), over one batch of random activations already
in memory, batch after batch. Prints one JSON line: tokens/s (median of the batches after one
warm-up), the process's peak RSS, torch's version and thread count.

  stats_torch_encode.py --d 768 --f 24576 --k 32 [--batch 4096] [--batches 6] [--threads 2]
"""
import argparse
import json
import resource
import statistics
import time
import warnings

warnings.filterwarnings("ignore")
import torch  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--d", type=int, required=True)
    p.add_argument("--f", type=int, required=True)
    p.add_argument("--k", type=int, required=True)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--batches", type=int, default=6)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    W = torch.randn(a.d, a.f) / a.d ** 0.5
    b = torch.zeros(a.f)
    x = torch.randn(a.batch, a.d)
    count = torch.zeros(a.f, dtype=torch.int64)
    mx = torch.zeros(a.f)
    seconds = []
    with torch.inference_mode():
        for _ in range(a.batches + 1):
            t0 = time.perf_counter()
            v, i = torch.topk(x @ W + b, a.k, dim=1)
            v = v.relu()
            count += torch.bincount(i.flatten(), weights=(v.flatten() > 0).double(), minlength=a.f).long()
            mx.scatter_reduce_(0, i.flatten(), v.flatten(), reduce="amax")
            seconds.append(time.perf_counter() - t0)
    timed = seconds[1:]
    print(json.dumps({"tokens_per_s": a.batch / statistics.median(timed), "batches": a.batches,
                      "min_tokens_per_s": a.batch / max(timed), "max_tokens_per_s": a.batch / min(timed),
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                      "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
