"""The train-step table: saepipe next to eai-sparsify's and SAELens' own TopK training steps,
each with AuxK idle (no dead latents, as at the start of training) and with 10% of the
latents dead (AuxK at work), on the same in-memory batch, fp32, same k, lr, AuxK width and
coefficient, same threads; tokens/s as the median of the steps after a warm-up, and each
implementation's loss over the steps (it must fall: the step trains)."""
import math
import os
import sys

from report_common import PEERS, Row, RunError, Table, run, run_json, summarize

WHAT_IS_TIMED = [
    "**What is timed** (one step = forward + backward + optimizer step on the same batch, data already in "
    "memory, wall clock, median of the timed steps after the warm-up):",
    "- **saepipe** (`bench/bench_step_timed.cpp`): what the train stage's `TrainModel::step` does on one rank: "
    "gradient zeroed, `sae_forward_backward` (encoder rows in blocks of 1024, as the trainer passes them), "
    "gradient to float, decoder-gradient projection + Adam + decoder renormalisation, dead-latent counters. "
    "Not included: the trainer's metrics record and its single-rank allreduce; the LR schedule is a constant.",
    "- **eai-sparsify** (`bench/peers/train_sparsify.py`): its own `Trainer.fit` with `optimizer=\"adam\"` "
    "(torch.optim.Adam: bitsandbytes is not installed), `auxk_alpha` = the AuxK coefficient, on a model stand-in "
    "whose only layer hands the hook the batch; a step runs from the end of one optimizer step to the end of the "
    "next (the first, a warm-up, from the call of `fit()`) (its hook: b_dec from the batch mean at step 0, decoder renormalised, dead mask, `SparseCoder` forward "
    "with its fused encoder and `decoder_impl`, backward; gradient projection, Adam, zero_grad, scheduler, "
    "dead-latent counters). Triton off on CPU (`SPARSIFY_DISABLE_TRITON=1`: its eager `embedding_bag` decoder), "
    "on for GPU. The checkpoint `fit()` writes at its end is skipped (after the last timed step).",
    "- **sae-lens** (`bench/peers/train_saelens.py`): its own `SAETrainer.fit` loop over `SAETrainer.step` on a "
    "`TopKTrainingSAE` (training_forward_pass, backward, clip_grad_norm_(1.0), Adam, zero_grad, LR scheduler, "
    "firing counters), fed from memory; timed like sparsify. SAELens' defaults otherwise "
    "(`rescale_acts_by_decoder_norm`, `decoder_init_norm` 0.1, dense decode: `use_sparse_activations=True` "
    "fails in backward on the CPU with torch 2.15, `aten::view` having no SparseCPU kernel).",
    "- The dead set: latent f is dead when (f·997) mod 1000 < 100, held fixed over the steps in all three "
    "(each trainer would revive a dead latent that fires; holding it keeps AuxK's work the same on every step). "
    "k_aux = d_in / 2 in all three (sparsify's and SAELens' fixed rule), AuxK coefficient 1/32.",
    "",
    "**Differences that remain** (none changes the work of a step by more than an elementwise pass): SAELens "
    "clips the gradient norm every step (saepipe's clipping is off by default) and does not renormalise decoder "
    "rows: it scales the pre-activations by the decoder row norms instead; each reports its own loss (saepipe "
    "and SAELens: squared error summed over d, mean over tokens; sparsify: the same divided by the batch's total "
    "variance); Adam eps 6.25e-10 (saepipe) vs 1e-8 (the peers' torch default); initialisation (SAELens: decoder "
    "rows of norm 0.1 and b_dec zero; the others: unit rows, b_dec = the batch mean).",
]


def shape(ctx):
    if ctx.quick:
        return {"d": 64, "f": 512, "k": 8, "batch": 4096, "warmup": 1, "steps": 3}
    if ctx.device == "cuda":
        return {"d": 768, "f": 24576, "k": 32, "batch": 16384, "warmup": 3, "steps": 20}
    return {"d": 768, "f": 24576, "k": 32, "batch": 4096, "warmup": 1, "steps": 5}


DEAD = (0.0, 0.1)  # AuxK idle, 10% of the latents dead


def group_name(dead):
    return "idle" if dead == 0 else f"{dead:.0%} dead"


def loss_text(losses):
    """First → last; a loss that did not fall is flagged (that step does not train)."""
    flag = "" if losses[-1] < losses[0] else " (did not fall: not training)"
    return f"{losses[0]:.4g} → {losses[-1]:.4g}{flag}"


def peer_rows(ctx, s, script, impl, lr, extra_args=()):
    """{dead fraction: Row} from one run of a peer script (both settings, one import)."""
    out = ctx.path("train", os.path.splitext(script)[0] + ".json")
    args = [ctx.py, os.path.join(PEERS, script), "--x", ctx.path("train", "x.f32"), "--d", s["d"], "--f", s["f"],
            "--k", s["k"], "--lr", lr, "--dead-fractions", ",".join(map(str, DEAD)), "--warmup", s["warmup"],
            "--steps", s["steps"], "--threads", ctx.threads, "--device", ctx.device, "--json", out, *extra_args]
    try:
        rows = {}
        for r in run_json(args, out, ctx)["runs"]:
            rows[r["dead_fraction"]] = Row(group_name(r["dead_fraction"]), f"{impl} {r['versions'][impl]}",
                                           summarize(r["seconds"], s["warmup"], r["batch"]),
                                           extra={"loss": loss_text(r["loss"]), "dead": str(r["n_dead"][0])})
        return rows
    except (RunError, KeyError) as e:
        return {dead: Row(group_name(dead), impl, error=str(e)) for dead in DEAD}


def saepipe_cpu_row(ctx, s, group, dead, lr, commit):
    out = ctx.path("train", f"saepipe_{int(dead * 100)}.json")
    try:
        r = run_json([os.path.join(ctx.build, "bench", "bench_step_timed"), "--x", ctx.path("train", "x.f32"),
                      "--d", s["d"], "--f", s["f"], "--k", s["k"], "--auxk", s["d"] // 2, "--lr", lr,
                      "--dead-fraction", dead, "--warmup", s["warmup"], "--steps", s["steps"], "--json", out], out, ctx)
        return Row(group, f"saepipe {commit}", summarize(r["seconds"], s["warmup"], r["batch"]),
                   extra={"loss": loss_text(r["loss"]), "dead": str(r["n_dead"][0])}, saepipe=True)
    except (RunError, KeyError) as e:
        return Row(group, "saepipe", error=str(e), saepipe=True)


def saepipe_cuda_rows(ctx, s, group, dead, commit):
    """saepipe_bench_gpu (bench/gpu/bench_topk_step.cpp): its own random batch, mean of --iters
    steps timed with CUDA events after 3 warm-ups; no loss (the CUDA parity tests cover it)."""
    out = ctx.path("train", f"saepipe_gpu_{int(dead * 100)}.json")
    try:
        run([os.path.join(ctx.gpu_bin, "saepipe_bench_gpu"), "--d", s["d"], "--f", s["f"], "--k", s["k"],
             "--batches", s["batch"], "--precisions", "fp32,bf16", "--auxk", s["d"] // 2,
             "--dead-fraction", dead, "--iters", s["steps"], "--json", out], ctx, out + ".log")
        import json
        r = json.load(open(out))
    except (RunError, OSError, ValueError) as e:
        return [Row(group, "saepipe", error=str(e), saepipe=True)], None
    rows = []
    for run_ in r["runs"]:
        tok = run_["tokens_per_s"]
        rows.append(Row(group, f"saepipe {commit} ({run_['precision']} encoder)",
                        {"tokens_per_s": tok, "min": tok, "max": tok, "n": s["steps"]},
                        extra={"loss": "— (CUDA parity tests)", "dead": str(r["shape"]["dead"])},
                        saepipe=run_["precision"] == "fp32"))
    return rows, r["gemm_peak_tflops"]["fp32"] * 1e3


def train_table(ctx, commit, cpu_peak_gflops):
    """cpu_peak_gflops(n, d, f): the measured sgemm peak of the encoder product."""
    s = shape(ctx)
    lr = 2e-4 / math.sqrt(s["f"] / 2**14)  # sparsify's default for Adam
    run([sys.executable, os.path.join(PEERS, "make_batch.py"), ctx.path("train", "x.f32"), "--d", s["d"],
         "--batch", s["batch"]], ctx, ctx.path("train", "make_batch.log"))
    sparsify = peer_rows(ctx, s, "train_sparsify.py", "eai-sparsify", lr, ["--work", ctx.path("train", "sparsify")])
    saelens = peer_rows(ctx, s, "train_saelens.py", "sae-lens", lr)
    rows, peak = [], None
    for dead in DEAD:
        group = group_name(dead)
        if ctx.device == "cuda":
            ours, p = saepipe_cuda_rows(ctx, s, group, dead, commit)
            peak = peak or p
            rows += ours
        else:
            rows.append(saepipe_cpu_row(ctx, s, group, dead, lr, commit))
        rows += [sparsify[dead], saelens[dead]]
    if ctx.device == "cpu":
        peak = cpu_peak_gflops(s["batch"], s["d"], s["f"])
    flop = 2 * s["d"] * s["f"]
    where = "fp32 GEMM 8192³ on the GPU" if ctx.device == "cuda" else \
        f"sgemm [{s['batch']},{s['d']}]×[{s['d']},{s['f']}], the encoder's shape"
    notes = [f"Batch {s['batch']} tokens, d_in {s['d']}, d_sae {s['f']}, k {s['k']}, fp32, Adam lr {lr:.3g}, "
             f"k_aux {s['d'] // 2}, AuxK coefficient 1/32, {ctx.threads} threads; warm-up {s['warmup']} step(s), "
             f"then the median of {s['steps']}."] + WHAT_IS_TIMED
    if ctx.device == "cuda":
        notes.append("On the GPU: saepipe's rows come from `saepipe_bench_gpu` (its own random batch, mean of the "
                     "timed steps by CUDA events; dead latents: every 10th); sparsify's `Trainer.fit` turns TF32 "
                     "on and its `SparseCoder.forward` runs under bf16 autocast, hence saepipe's bf16 row.")
    return Table(
        title=f"TopK train step ({ctx.device})", group_header="AuxK", rows=rows,
        bound_tokens_per_s=peak * 1e9 / flop if peak else 0.0,
        bound_text=f"the encoder GEMM alone (2·d_in·d_sae = {flop / 1e6:.1f} MFLOP per token) at the measured peak "
                   f"{peak:.0f} GFLOP/s ({where})" if peak else "unmeasured",
        extra_headers=[("loss", "loss, first → last step"), ("dead", "dead latents")],
        notes=notes, chart="train_tokens_per_s.svg", peak_gflops=peak or 0.0)
