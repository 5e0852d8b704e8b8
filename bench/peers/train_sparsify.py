"""eai-sparsify's TopK training step, run by its own Trainer.fit (sparsify.Trainer) with Adam,
on the batch every implementation trains on (bench/report.py).

A model stand-in hands the trainer's forward hook that batch (already in memory) as the
output of its only layer, so each step is sparsify's own: its hook (b_dec from the batch mean
at step 0, decoder rows renormalised, the dead mask from num_tokens_since_fired when
auxk_alpha > 0, SparseCoder forward with its fused encoder and decoder_impl, fvu +
auxk_alpha * auxk backward), then gradient projection, Adam step, zero_grad, LR scheduler and
the dead-latent counters. The dead set is held fixed (re-marked before each step's hook reads
it; the trainer would revive a dead latent that fires), so AuxK does the same work on every
step, as in bench_step_timed and train_saelens.py. A step is timed from the end of one optimizer step to the end of the
next (an optimizer step post-hook; the first from the call of fit(), so it also holds fit()'s
set-up: a warm-up step), so every piece of the loop falls in exactly one step.
The checkpoint fit() writes when it ends is skipped (outside the timed steps).

  train_sparsify.py --x FILE --d 768 --f 24576 --k 32 --lr 1.63e-4 --dead-fractions 0,0.1
                    --warmup 1 --steps 5 --threads 2 --device cpu --work DIR --json OUT
Each dead fraction gets a fresh Trainer (one process: one import of sparsify); OUT holds
{"runs": [one result per fraction]}.
"""
import argparse
import os
import sys
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_common  # noqa: E402


def measure(a, torch, x, dead_fraction):
    from torch import nn
    from sparsify import SparseCoderConfig, Trainer, TrainConfig
    from sparsify.utils import decoder_impl

    N = x.shape[0]
    T = 128 if N % 128 == 0 else N
    B = N // T
    state = {}

    class Replay(nn.Module):
        """The hooked layer: returns the in-memory batch as [B, T, d] (zeros of the right
        width for resolve_widths' dummy input)."""

        def forward(self, ids):
            if tuple(ids.shape) == (B, T):
                # The dead set, held fixed: the trainer revives a dead latent that fires.
                if dead_fraction > 0:
                    state["counts"][state["dead"]] = cfg.dead_feature_threshold + 1
                return x.view(B, T, a.d)
            return x.new_zeros(*ids.shape, a.d)

    class ReplayModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([Replay()])
            self.config = SimpleNamespace(num_hidden_layers=1)
            self.register_buffer("anchor", torch.zeros(1, device=a.device))

        base_model = property(lambda self: self)
        device = property(lambda self: self.anchor.device)
        dummy_inputs = property(lambda self: {"input_ids": torch.zeros(1, 4, dtype=torch.long)})

        def forward(self, input_ids):
            return self.layers[0](input_ids)

    n_batches = a.warmup + a.steps
    dataset = [{"input_ids": torch.zeros(T, dtype=torch.long)} for _ in range(B * n_batches)]
    cfg = TrainConfig(
        SparseCoderConfig(k=a.k, num_latents=a.f), batch_size=B, optimizer="adam", lr=a.lr,
        lr_warmup_steps=0, auxk_alpha=a.auxk_coef, log_to_wandb=False, save_every=10**9,
        save_dir=os.path.join(a.work, "sparsify-checkpoints"), layers=[0])
    torch.manual_seed(0)
    trainer = Trainer(cfg, dataset, ReplayModel())
    trainer.save = lambda: None  # the final checkpoint: outside the timed steps, not measured
    (name, sae), = trainer.saes.items()
    state["counts"] = trainer.num_tokens_since_fired[name]
    state["dead"] = peer_common.dead_latents(a.f, dead_fraction).to(a.device)

    stamps, fvu, auxk, n_dead = [], [], [], []

    def before_forward(m, i):
        n_dead.append(int((state["counts"] > cfg.dead_feature_threshold).sum()))

    def after_forward(m, i, out):  # returns None: the output stays as it is
        fvu.append(float(out.fvu.detach()))
        auxk.append(float(out.auxk_loss.detach()))

    sae.register_forward_pre_hook(before_forward)
    sae.register_forward_hook(after_forward)
    for opt in trainer.optimizers:
        opt.register_step_post_hook(lambda *_: stamps.append(peer_common.clock(a.device)))
    stamps.append(peer_common.clock(a.device))  # step 0, a warm-up, also holds fit()'s set-up
    trainer.fit()
    return {
        "impl": "eai-sparsify", "versions": peer_common.versions("eai-sparsify", "torch"),
        "threads": torch.get_num_threads(), "device": a.device, "d": a.d, "f": a.f, "k": a.k, "batch": N,
        "lr": a.lr, "auxk_coef": a.auxk_coef, "k_aux": a.d // 2, "dead_fraction": dead_fraction,
        "optimizer": type(trainer.optimizers[0]).__module__ + "." + type(trainer.optimizers[0]).__name__,
        "decoder": decoder_impl.__name__, "warmup": a.warmup,
        "seconds": [t1 - t0 for t0, t1 in zip(stamps, stamps[1:])], "loss": fvu, "auxk_loss": auxk,
        "n_dead": n_dead, "loss_name": "fvu (sum of squared error / total variance of the batch)"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--x", required=True)
    ap.add_argument("--d", type=int, required=True)
    ap.add_argument("--f", type=int, required=True)
    ap.add_argument("--k", type=int, required=True)
    ap.add_argument("--lr", type=float, required=True)
    ap.add_argument("--auxk-coef", type=float, default=1 / 32)
    ap.add_argument("--dead-fractions", default="0,0.1")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--work", required=True)
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    # Triton's sparse decoder needs a GPU; on the CPU sparsify's eager embedding_bag decoder.
    # utils.py reads this when sparsify is imported.
    if a.device == "cpu":
        os.environ["SPARSIFY_DISABLE_TRITON"] = "1"
    else:
        os.environ.pop("SPARSIFY_DISABLE_TRITON", None)
    torch = peer_common.setup_torch(a.threads, a.device)
    x = peer_common.load_batch(a.x, a.d, a.device)
    runs = [measure(a, torch, x, float(f)) for f in a.dead_fractions.split(",")]
    peer_common.write(a.json, {"runs": runs})


if __name__ == "__main__":
    main()
