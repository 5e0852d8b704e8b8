"""SAELens' TopK training step: its own SAETrainer.fit loop (SAETrainer.step on a
TopKTrainingSAE: training_forward_pass, backward, clip_grad_norm_(1.0), Adam step, zero_grad,
LR scheduler, its firing counters) on the batch every implementation trains on
(bench/report.py), fed from memory by the data provider.

A step is timed from the end of one optimizer step to the end of the next (an optimizer step
post-hook; the first from the call of fit(), so it also holds fit()'s set-up: a warm-up step),
so every piece of fit()'s loop falls in exactly one step. The dead set is held
fixed: the data provider re-marks it in n_forward_passes_since_fired before each step (the
trainer would revive a dead latent that fires), so AuxK does the same work on every step.
SAELens' defaults otherwise (rescale_acts_by_decoder_norm, decoder_init_norm 0.1, dense
decode), with the AuxK coefficient, lr and dtype of the others. (use_sparse_activations=True
fails in backward on the CPU with torch 2.15: aten::view has no SparseCPU kernel.)

  train_saelens.py --x FILE --d 768 --f 24576 --k 32 --lr 1.63e-4 --dead-fractions 0,0.1
                   --warmup 1 --steps 5 --threads 2 --device cpu --json OUT
Each dead fraction gets a fresh SAE and trainer (one process: one import of sae_lens); OUT
holds {"runs": [one result per fraction]}.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_common  # noqa: E402


def measure(a, torch, x, dead_fraction):
    from sae_lens import SAETrainer, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import SAETrainerConfig

    N = x.shape[0]
    n_steps = a.warmup + a.steps
    torch.manual_seed(0)
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(
        d_in=a.d, d_sae=a.f, k=a.k, aux_loss_coefficient=a.auxk_coef,
        dtype="float32", device=a.device))
    dead = peer_common.dead_latents(a.f, dead_fraction).to(a.device)
    window = 1000

    def batches():
        while True:
            if dead_fraction > 0:  # the dead set, held fixed
                trainer.n_forward_passes_since_fired[dead] = window + 1
            yield x

    trainer = SAETrainer(
        cfg=SAETrainerConfig(total_training_samples=N * n_steps, train_batch_size_samples=N, lr=a.lr, lr_end=a.lr,
                             device=a.device, autocast=False, dead_feature_window=window),
        sae=sae, data_provider=batches())
    stamps, loss, aux, n_dead = [], [], [], []
    trainer.optimizer.register_step_post_hook(lambda *_: stamps.append(peer_common.clock(a.device)))
    step = trainer.step

    def recorded_step(batch):
        n_dead.append(int(trainer.dead_neurons.sum()))
        out = step(batch)
        loss.append(float(out.losses["mse_loss"].detach()))
        aux.append(float(out.losses.get("auxiliary_reconstruction_loss", torch.zeros(())).detach()))
        return out

    trainer.step = recorded_step
    stamps.append(peer_common.clock(a.device))  # step 0, a warm-up, also holds fit()'s set-up
    trainer.fit()
    return {
        "impl": "sae-lens", "versions": peer_common.versions("sae-lens", "torch"),
        "threads": torch.get_num_threads(), "device": a.device, "d": a.d, "f": a.f, "k": a.k, "batch": N,
        "lr": a.lr, "auxk_coef": a.auxk_coef, "k_aux": a.d // 2, "dead_fraction": dead_fraction,
        "use_sparse_activations": sae.cfg.use_sparse_activations,
        "rescale_acts_by_decoder_norm": sae.cfg.rescale_acts_by_decoder_norm, "warmup": a.warmup,
        "seconds": [t1 - t0 for t0, t1 in zip(stamps, stamps[1:])], "loss": loss, "auxk_loss": aux,
        "n_dead": n_dead, "loss_name": "mse_loss (sum over d of squared error, mean over tokens)"}


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
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    torch = peer_common.setup_torch(a.threads, a.device)
    x = peer_common.load_batch(a.x, a.d, a.device)
    runs = [measure(a, torch, x, float(f)) for f in a.dead_fractions.split(",")]
    peer_common.write(a.json, {"runs": runs})


if __name__ == "__main__":
    main()
