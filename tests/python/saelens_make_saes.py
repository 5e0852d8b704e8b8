#!/usr/bin/env python3
"""Trains and saves SAEs with the real SAELens on a saepipe activation store, for saepipe's
stats stage to evaluate (`[stats] sae = "<dir>"`):

  saelens_make_saes.py STORE_DIR HOOK OUT_DIR

Directories written under OUT_DIR, each as SAELens itself saves it (cfg.json +
sae_weights.safetensors):
  topk/         TopKTrainingSAE trained by SAETrainer.fit with normalize_activations
                "expected_average_only_in" (the scale folded in at the end) and
                rescale_acts_by_decoder_norm, saved by save_inference_model
  batchtopk/    BatchTopKTrainingSAE trained the same way, saved as a JumpReLU SAE
  standard/     StandardTrainingSAE (L1) trained, then an inference StandardSAE with
                apply_b_dec_to_input False, saved by save_model
  topk_rescale/ an inference TopKSAE with rescale_acts_by_decoder_norm and decoder rows of
                norms far from 1, saved by save_model
  jumprelu/     an inference JumpReLUSAE with some negative thresholds, saved by save_model
and directories saepipe must refuse (exit 2): gated/ (GatedSAE), layer_norm/ and
scaled/ (normalize_activations "layer_norm", "expected_average_only_in" not folded),
no_hook/ (metadata without hook_name).
"""
import os
import sys
import warnings

import h5py
import numpy as np
import torch

warnings.filterwarnings("ignore")
from sae_lens import (  # noqa: E402
    BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig, GatedSAE, GatedSAEConfig, JumpReLUSAE, JumpReLUSAEConfig,
    SAETrainer, StandardSAE, StandardSAEConfig, StandardTrainingSAE, StandardTrainingSAEConfig, TopKSAE, TopKSAEConfig,
    TopKTrainingSAE, TopKTrainingSAEConfig)
from sae_lens.config import SAETrainerConfig  # noqa: E402


def batches(x, batch, seed):
    g = torch.Generator().manual_seed(seed)
    while True:
        yield x[torch.randint(0, len(x), (batch,), generator=g)]


def train(sae, x, steps=120, batch=256, lr=3e-3):
    cfg = SAETrainerConfig(total_training_samples=steps * batch, train_batch_size_samples=batch, lr=lr, lr_end=lr,
                           n_batches_for_norm_estimate=8, dead_feature_window=50, feature_sampling_window=100)
    return SAETrainer(cfg=cfg, sae=sae, data_provider=batches(x, batch, 1)).fit()


def main():
    store, hook, out = sys.argv[1], sys.argv[2], sys.argv[3]
    torch.manual_seed(0)
    torch.set_num_threads(1)  # tiny matrices: threads only contend
    x = torch.from_numpy(h5py.File(f"{store}/activations.h5", "r")[f"activations/{hook}"][...].astype(np.float32))
    d, F = x.shape[1], 64
    meta = {"hook_name": hook, "context_size": 32, "prepend_bos": True}

    def save(sae, name, inference=False):
        for k, v in meta.items():
            setattr(sae.cfg.metadata, k, v)
        (sae.save_inference_model if inference else sae.save_model)(os.path.join(out, name))

    # Trained by SAELens' own trainer; the activation scale is estimated, trained with, folded.
    topk = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d, d_sae=F, k=4, normalize_activations="expected_average_only_in"))
    save(train(topk, x), "topk", inference=True)
    btk = BatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(d_in=d, d_sae=F, k=4, normalize_activations="expected_average_only_in"))
    save(train(btk, x), "batchtopk", inference=True)
    std_t = train(StandardTrainingSAE(StandardTrainingSAEConfig(d_in=d, d_sae=F, l1_coefficient=1.0)), x)
    # The same weights in an inference SAE that does not subtract b_dec before encoding.
    std = StandardSAE(StandardSAEConfig(d_in=d, d_sae=F, apply_b_dec_to_input=False))
    std.load_state_dict({n: p.detach().clone() for n, p in std_t.state_dict().items() if n in std.state_dict()})
    with torch.no_grad():
        std.b_dec.normal_(0, 0.5)
    save(std, "standard")

    # Conventions the trainer's save folds away, written directly.
    tr = TopKSAE(TopKSAEConfig(d_in=d, d_sae=F, k=4, rescale_acts_by_decoder_norm=True))
    with torch.no_grad():
        tr.W_dec.copy_(topk.W_dec.detach() * torch.linspace(0.2, 5.0, F)[:, None])
        tr.W_enc.copy_(topk.W_enc.detach())
        tr.b_enc.copy_(topk.b_enc.detach())
        tr.b_dec.copy_(topk.b_dec.detach())
    save(tr, "topk_rescale")
    jr = JumpReLUSAE(JumpReLUSAEConfig(d_in=d, d_sae=F))
    with torch.no_grad():
        for n in ("W_enc", "b_enc", "W_dec", "b_dec"):
            getattr(jr, n).copy_(getattr(std_t, n).detach())
        jr.threshold.copy_(torch.linspace(-0.5, 1.0, F))
    save(jr, "jumprelu")

    # What saepipe cannot evaluate.
    save(GatedSAE(GatedSAEConfig(d_in=d, d_sae=F)), "gated")
    save(StandardSAE(StandardSAEConfig(d_in=d, d_sae=F, normalize_activations="layer_norm")), "layer_norm")
    save(StandardSAE(StandardSAEConfig(d_in=d, d_sae=F, normalize_activations="expected_average_only_in")), "scaled")
    nohook = StandardSAE(StandardSAEConfig(d_in=d, d_sae=F))
    nohook.save_model(os.path.join(out, "no_hook"))
    print("saved", sorted(os.listdir(out)))


if __name__ == "__main__":
    main()
