"""Hugging Face transformers' forward pass as a harvest runs it: AutoModel (the base model, no
LM head) in float32, the same token ids already in memory, batches of B sequences, a forward
hook on the hooked block copying its output (resid_post) into a host buffer, use_cache off.
Each batch is timed (bench/report.py takes the median after the warm-up).

The model directory holds only the blocks up to the hooked one (bench/peers/make_model.py),
so transformers runs the same blocks saepipe does; it also runs its final norm after them
(one norm per token, not counted). Attention: transformers' default implementation.

  harvest_transformers.py --model DIR --ids FILE --context 128 --batch 8 --layer 8
                          --warmup 1 --threads 2 --device cpu --json OUT
"""
import argparse
import os
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_common  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids", required=True, help="int32 [n_seq, context] raw file")
    ap.add_argument("--context", type=int, required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--layer", type=int, required=True, help="the hooked block (its output is kept)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    torch = peer_common.setup_torch(a.threads, a.device)
    import numpy as np
    from transformers import AutoModel

    dtype = getattr(torch, a.dtype)
    model = AutoModel.from_pretrained(a.model, dtype=dtype).to(a.device).eval()
    rss_after_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (KiB on Linux)
    ids = torch.from_numpy(np.fromfile(a.ids, dtype="<i4").astype(np.int64).reshape(-1, a.batch, a.context))
    blocks = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == model.config.num_hidden_layers]
    assert len(blocks) == 1, "cannot tell the model's list of blocks"
    host = torch.empty(a.batch * a.context, model.config.hidden_size, dtype=dtype,
                       pin_memory=a.device == "cuda")

    def keep(module, inputs, output):
        out = output[0] if isinstance(output, tuple) else output
        host.copy_(out.reshape(-1, out.shape[-1]), non_blocking=True)

    blocks[0][a.layer].register_forward_hook(keep)
    seconds = []
    with torch.inference_mode():
        for b in range(max(len(ids), a.warmup + 1)):
            batch = ids[b % len(ids)].to(a.device)
            t0 = peer_common.clock(a.device)
            model(input_ids=batch, use_cache=False)
            seconds.append(peer_common.clock(a.device) - t0)
    peer_common.write(a.json, {
        "impl": "transformers", "versions": peer_common.versions("transformers", "torch"),
        "threads": torch.get_num_threads(), "device": a.device, "dtype": a.dtype,
        "model_class": type(model).__name__, "attn_implementation": model.config._attn_implementation,
        "layers_run": model.config.num_hidden_layers, "hook_layer": a.layer, "context": a.context,
        "batch_sequences": a.batch, "tokens_per_batch": a.batch * a.context, "warmup": a.warmup,
        "seconds": seconds, "mean_square_activation": float(host.float().pow(2).mean()),
        "peak_rss_after_load_mib": rss_after_load, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


if __name__ == "__main__":
    main()
