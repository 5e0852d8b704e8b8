"""Reference for the train-step benchmark: a plain PyTorch TopK SAE step (dense autograd,
Adam, unit-norm decoder with gradient projection), the way a straightforward PyTorch trainer
writes it. Prints one JSON line: tokens/s, the config, torch's version and thread count.
Usage: torch_topk_step.py D F K BATCH [STEPS]"""
import json
import os
import sys
import time

import torch


def main():
    d, f, k, batch = (int(a) for a in sys.argv[1:5])
    steps = int(sys.argv[5]) if len(sys.argv) > 5 else 3
    # Every core, like the C++ step it is compared with (unless OMP_NUM_THREADS says otherwise).
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))
    torch.manual_seed(0)
    W_dec = torch.nn.Parameter(torch.nn.functional.normalize(torch.randn(f, d), dim=1))
    W_enc = torch.nn.Parameter(W_dec.detach().t().clone())
    b_enc = torch.nn.Parameter(torch.zeros(f))
    b_dec = torch.nn.Parameter(torch.zeros(d))
    opt = torch.optim.Adam([W_enc, b_enc, W_dec, b_dec], lr=2e-4, eps=6.25e-10)
    x = torch.randn(batch, d)

    def step():
        pre = (x - b_dec) @ W_enc + b_enc
        val, idx = pre.topk(k, dim=1)
        z = torch.zeros_like(pre).scatter(1, idx, torch.relu(val))
        loss = ((z @ W_dec + b_dec - x) ** 2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        with torch.no_grad():  # remove the gradient component parallel to each decoder row
            W_dec.grad -= (W_dec.grad * W_dec).sum(1, keepdim=True) * W_dec
        opt.step()
        with torch.no_grad():
            W_dec.div_(W_dec.norm(dim=1, keepdim=True))

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    dt = (time.perf_counter() - t0) / steps
    print(json.dumps({"impl": "pytorch", "d": d, "f": f, "k": k, "batch": batch, "seconds_per_step": dt,
                      "tokens_per_s": batch / dt, "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
