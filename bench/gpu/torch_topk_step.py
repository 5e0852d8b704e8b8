"""A plain PyTorch TopK SAE training step on the GPU, next to which bench/gpu/run_all.sh reports
saepipe's: the encoder GEMM (fp32, or bf16 under autocast), torch.topk, a dense decode
(scatter of the k values into [N, F], then the decoder GEMM), MSE, autograd, Adam, decoder rows
renormalised. No AuxK (the saepipe figure it sits beside has AuxK idle too). Timed with the
GPU's queue drained: the median of --steps steps after --warmup.

  torch_topk_step.py --x FILE --d 768 --f 32768 --k 32 --batch 4096 --precision bf16 --json OUT
"""
import argparse
import json
import statistics
import time

import numpy as np
import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--x", required=True)
    ap.add_argument("--d", type=int, required=True)
    ap.add_argument("--f", type=int, required=True)
    ap.add_argument("--k", type=int, required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32
    dev = "cuda"
    x = torch.from_numpy(np.fromfile(a.x, dtype="<f4").reshape(-1, a.d)[: a.batch].copy()).to(dev)
    assert x.shape[0] == a.batch, f"{a.x} holds fewer than {a.batch} rows"
    g = torch.Generator(device="cpu").manual_seed(0)
    W_dec = torch.randn(a.f, a.d, generator=g)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    W_dec = W_dec.to(dev).requires_grad_()
    W_enc = W_dec.detach().t().clone().requires_grad_()
    b_enc = torch.zeros(a.f, device=dev, requires_grad=True)
    b_dec = x.median(dim=0).values.clone().requires_grad_()
    opt = torch.optim.Adam([W_enc, b_enc, W_dec, b_dec], lr=1e-4, eps=6.25e-10)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            pre = (x - b_dec) @ W_enc + b_enc
        val, idx = pre.float().topk(a.k, dim=1)
        z = torch.zeros(a.batch, a.f, device=dev).scatter(1, idx, torch.relu(val))
        x_hat = z @ W_dec + b_dec
        loss = (x_hat - x).pow(2).sum(dim=1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():  # keep the decoder rows' gradient on their sphere, as saepipe does
            W_dec.grad -= (W_dec.grad * W_dec).sum(dim=1, keepdim=True) * W_dec
        opt.step()
        with torch.no_grad():
            W_dec /= W_dec.norm(dim=1, keepdim=True)
        return loss

    times = []
    for i in range(a.warmup + a.steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = step()
        torch.cuda.synchronize()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    s = statistics.median(times)
    r = {"implementation": "pytorch", "torch": torch.__version__, "device": torch.cuda.get_device_name(),
         "precision": a.precision, "n": a.batch, "d": a.d, "f": a.f, "k": a.k, "step_s": s,
         "tokens_per_s": a.batch / s, "last_loss": float(loss)}
    with open(a.json, "a") as f:
        f.write(json.dumps(r) + "\n")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
