"""The harvest table: saepipe's forward pass next to Hugging Face transformers' on the same
random model (written by transformers itself) and the same token ids in memory, one group per
model family of bench/harvest_models.py, plus saepipe's whole harvest stage (forward + HDF5
writes). Both forwards' hooked activations are compared (mean square), so the two computed the
same thing."""
import json
import os

from harvest_models import MODELS, entry, forward_flops_per_token
from report_common import PEERS, Row, RunError, Table, run, run_json, summarize

WHAT_IS_TIMED = [
    "**What is timed** (float32 weights and activations, batches of sequences already in memory as token ids, "
    "BOS first; wall clock per batch, median of the batches after the warm-up):",
    "- **saepipe forward** (`bench/bench_forward_timed.cpp`): `TransformerModel::forward` as the harvest calls "
    "it (OpenMP threads over single-threaded BLAS), the hooked activations landing in a host buffer.",
    "- **transformers forward** (`bench/peers/harvest_transformers.py`): `AutoModel.from_pretrained` (the base "
    "model, no LM head), `model(input_ids, use_cache=False)` under `torch.inference_mode()`, a forward hook on "
    "the hooked block copying its output into a host buffer; transformers' default attention implementation. "
    "It also runs its final norm after the last block (not counted in the bound; one norm per token).",
    "- Where the environment pins OpenBLAS's kernels (OPENBLAS_CORETYPE), saepipe's forward and harvest stage "
    "also run without the pin (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset: the kernels Debian's OpenBLAS picks "
    "for this CPU); each row names its kernels. `bench/blas_vs_torch.py` compares the matrix products alone.",
    "- The model directory holds only the blocks up to the hooked one (written by transformers' "
    "`save_pretrained` from a random `from_config` model), so both run the same blocks.",
    "- **saepipe harvest stage**: `saepipe-harvest` on the same model and token stream, its own tokens/s "
    "(forward + the hooked activations written to HDF5 shards, writes overlapping the next shard's forward).",
]


# The machine's environment may pin OpenBLAS's kernels (OPENBLAS_CORETYPE, with OPENBLAS_L2_SIZE:
# this project's machines set Haswell, AVX2, on an AVX-512 CPU, against older OpenBLAS builds
# that fail on it). saepipe's rows then run twice: as the environment says, and with both unset,
# the kernels Debian's OpenBLAS picks itself for this CPU. transformers' torch uses its own MKL.
# Not with --quick: that is what CI runs (ctest e2e_bench_report), where the pin stays.
PINNED = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def own_kernels_differ(ctx):
    return "OPENBLAS_CORETYPE" in os.environ and not ctx.quick


def own_kernels_env(ctx):
    return {k: v for k, v in ctx.env().items() if k not in PINNED}


def kernels_text(name, own):
    if own:
        return f"OpenBLAS's own kernels: {name}"
    return f"OpenBLAS {name}" + (" set by OPENBLAS_CORETYPE" if "OPENBLAS_CORETYPE" in os.environ else "")


def settings(ctx):
    if ctx.quick:
        return {"n_seq": 16, "batch": 4, "context": 128, "warmup": 1}
    if ctx.device == "cuda":
        return {"n_seq": 512, "batch": 64, "context": 128, "warmup": 3}
    return {"n_seq": 48, "batch": 8, "context": 128, "warmup": 1}


def stage_row(ctx, m, s, model_dir, group, own_kernels=False):
    tag = "_own_kernels" if own_kernels else ""
    run_dir = ctx.path("harvest", m["model_type"], "run" + tag)
    job = ctx.path("harvest", m["model_type"], f"job{tag}.toml")
    open(job, "w").write(f"""[run]
name = "bench_harvest"
dir = "{run_dir}"
[harvest]
source = "model"
model = "{model_dir}"
tokens = "{model_dir}/tokens.npy"
hooks = ["blocks.{m['hook_layer']}.hook_resid_post"]
n_tokens = {s['n_seq'] * s['context']}
context = {s['context']}
shard_tokens = {s['batch'] * s['context'] * 2}
batch_sequences = {s['batch']}
""")
    log = ctx.path("harvest", m["model_type"], f"stage{tag}.log")
    what = "saepipe harvest stage" + (" with OpenBLAS's own kernels" if own_kernels else "")
    try:
        run([os.path.join(ctx.build, "saepipe-harvest"), "--job", job], ctx, log,
            env=own_kernels_env(ctx) if own_kernels else None)
    except RunError as e:
        return Row(group, what, error=str(e))
    import re
    found = re.findall(r"([0-9.]+) s, ([0-9]+) tokens/s", open(log).read())
    if not found:
        return Row(group, what, error="no tokens/s in its log")
    tok = float(found[-1][1])
    return Row(group, what + " (forward + HDF5 writes)",
               {"tokens_per_s": tok, "min": tok, "max": tok, "n": 1})


def cpu_rows(ctx, m, s, model_dir, commit, group):
    hook = f"blocks.{m['hook_layer']}.hook_resid_post"
    rows, ms = [], {}
    for own in [False] + ([True] if own_kernels_differ(ctx) else []):
        ours = ctx.path("harvest", m["model_type"], "saepipe_own_kernels.json" if own else "saepipe.json")
        try:
            r = run_json([os.path.join(ctx.build, "bench", "bench_forward_timed"), "--model", model_dir, "--hook", hook,
                          "--ids", os.path.join(model_dir, "ids.i32"), "--context", s["context"], "--batch", s["batch"],
                          "--warmup", s["warmup"], "--json", ours], ours, ctx, env=own_kernels_env(ctx) if own else None)
            ms["saepipe_own_kernels" if own else "saepipe"] = r["mean_square_activation"]
            if not own:
                ms["saepipe_rss"] = (r["peak_rss_after_load_mib"], r["peak_rss_mib"])
            rows.append(Row(group, f"saepipe {commit} forward ({kernels_text(r['blas_kernels'], own)})",
                            summarize(r["seconds"], s["warmup"], r["tokens_per_batch"]), saepipe=not own))
        except (RunError, KeyError) as e:
            rows.append(Row(group, "saepipe forward" + (" (OpenBLAS's own kernels)" if own else ""), error=str(e),
                            saepipe=not own))
    theirs = ctx.path("harvest", m["model_type"], "transformers.json")
    try:
        r = run_json([ctx.py, os.path.join(PEERS, "harvest_transformers.py"), "--model", model_dir, "--ids",
                      os.path.join(model_dir, "ids.i32"), "--context", s["context"], "--batch", s["batch"],
                      "--layer", m["hook_layer"], "--warmup", s["warmup"], "--threads", ctx.threads,
                      "--device", "cpu", "--json", theirs], theirs, ctx)
        ms["transformers"] = r["mean_square_activation"]
        ms["transformers_rss"] = (r["peak_rss_after_load_mib"], r["peak_rss_mib"])
        rows.append(Row(group, f"transformers {r['versions']['transformers']} {r['model_class']} forward "
                               f"({r['attn_implementation']})",
                        summarize(r["seconds"], s["warmup"], r["tokens_per_batch"])))
    except (RunError, KeyError) as e:
        rows.append(Row(group, "transformers forward", error=str(e)))
    rows.append(stage_row(ctx, m, s, model_dir, group))
    if own_kernels_differ(ctx):
        rows.append(stage_row(ctx, m, s, model_dir, group, own_kernels=True))
    return rows, ms


def cuda_rows(ctx, m, s, model_dir, commit, group):
    """saepipe_gpt2_cuda bench (GPT-2 only): its own random ids, CUDA events; fp32 and bf16."""
    rows = []
    if m["model_type"] != "gpt2":
        return [Row(group, "saepipe forward", error="saepipe has no CUDA forward for this family yet", saepipe=True)], {}
    for prec in ("fp32", "bf16"):
        out = ctx.path("harvest", m["model_type"], f"saepipe_gpu_{prec}.json")
        try:
            run([os.path.join(ctx.gpu_bin, "saepipe_gpt2_cuda"), "bench", "--model", model_dir, "--hook",
                 f"blocks.{m['hook_layer']}.hook_resid_post", "--context", s["context"], "--batch", s["batch"],
                 "--tokens", s["n_seq"] * s["context"], "--precision", prec, "--json", out], ctx, out + ".log")
            r = json.loads(open(out).read().strip().splitlines()[-1])
            tok = r["forward"]["tokens_per_s"]
            rows.append(Row(group, f"saepipe {commit} forward ({prec})", {"tokens_per_s": tok, "min": tok, "max": tok,
                                                                          "n": 1}, saepipe=prec == "fp32"))
        except (RunError, OSError, ValueError, KeyError) as e:
            rows.append(Row(group, f"saepipe forward ({prec})", error=str(e), saepipe=prec == "fp32"))
    for dtype in ("float32", "bfloat16"):
        out = ctx.path("harvest", m["model_type"], f"transformers_gpu_{dtype}.json")
        try:
            r = run_json([ctx.py, os.path.join(PEERS, "harvest_transformers.py"), "--model", model_dir, "--ids",
                          os.path.join(model_dir, "ids.i32"), "--context", s["context"], "--batch", s["batch"],
                          "--layer", m["hook_layer"], "--warmup", s["warmup"], "--threads", ctx.threads,
                          "--device", "cuda", "--dtype", dtype, "--json", out], out, ctx)
            rows.append(Row(group, f"transformers {r['versions']['transformers']} forward ({dtype})",
                            summarize(r["seconds"], s["warmup"], r["tokens_per_batch"])))
        except (RunError, KeyError) as e:
            rows.append(Row(group, f"transformers forward ({dtype})", error=str(e)))
    return rows, {}


def harvest_table(ctx, commit, peak_gflops):
    s = settings(ctx)
    rows, notes, bounds = [], [], []
    base = s
    for model in MODELS:
        m = entry(model, ctx.quick)
        s = {**base, **{k: m[k] for k in ("n_seq", "batch") if k in m and not ctx.quick}}
        group = model["name"] + (" (small shape)" if ctx.quick else "")
        model_dir = ctx.path("harvest", m["model_type"], "model")
        try:
            run([ctx.py, os.path.join(PEERS, "make_model.py"), model_dir, "--model-type", m["model_type"],
                 "--config", json.dumps(m["config"]), "--n-seq", s["n_seq"], "--context", s["context"],
                 "--save-dtype", m.get("save_dtype", "float32")],
                ctx, ctx.path("harvest", m["model_type"], "make_model.log"))
        except RunError as e:
            rows.append(Row(group, "model", error=str(e)))
            continue
        fn = cuda_rows if ctx.device == "cuda" else cpu_rows
        got, ms = fn(ctx, m, s, model_dir, commit, group)
        rows += got
        if "saepipe_rss" in ms and "transformers_rss" in ms:
            (sl, sp), (tl, tp) = ms["saepipe_rss"], ms["transformers_rss"]
            notes.append(f"Peak resident memory, {group}: after loading the model saepipe {sl:.0f} MiB, transformers "
                         f"{tl:.0f} MiB; after the timed batches saepipe {sp:.0f} MiB, transformers {tp:.0f} MiB "
                         f"(each process's getrusage maximum; transformers' includes the Python and torch runtime).")
        if "saepipe" in ms and "transformers" in ms:
            rel = abs(ms["saepipe"] - ms["transformers"]) / max(abs(ms["transformers"]), 1e-30)
            notes.append(f"Activations check, {group}: mean square of the hooked activations, saepipe "
                         f"{ms['saepipe']:.6g}, transformers {ms['transformers']:.6g}, relative difference {rel:.1e}.")
            if "saepipe_own_kernels" in ms:
                own = ms["saepipe_own_kernels"]
                notes.append(f"Activations check, {group}, saepipe with OpenBLAS's own kernels: {own:.6g}, relative "
                             f"difference to transformers {abs(own - ms['transformers']) / max(abs(ms['transformers']), 1e-30):.1e}.")
        flop = forward_flops_per_token(m["dims"], m["hook_layer"] + 1, s["context"])
        bounds.append((group, flop))
        if not ctx.quick:
            notes.append(f"{group}: {s['n_seq']} sequences in batches of {s['batch']}, hook "
                         f"blocks.{m['hook_layer']}.hook_resid_post. {m.get('note', '')}".rstrip())
    # One bound per table: rows of every group are set against their own model's FLOPs below.
    table = Table(
        title=f"Harvest: model forward ({ctx.device})", group_header="model", rows=rows,
        bound_tokens_per_s=0.0,
        bound_text="; ".join(f"{g}: {f / 1e6:.1f} MFLOP per token (blocks 0–hook, context {s['context']}) at the "
                             f"measured peak {peak_gflops:.0f} GFLOP/s = {peak_gflops * 1e9 / f:.0f} tokens/s"
                             for g, f in bounds) if peak_gflops else "unmeasured (no GEMM peak)",
        notes=[f"Context {base['context']}, {ctx.threads} threads; warm-up {base['warmup']} batch(es); "
               f"batches of {base['batch']} of {base['n_seq']} sequences unless said."] + notes + WHAT_IS_TIMED,
        chart="harvest_tokens_per_s.svg", group_bounds={g: peak_gflops * 1e9 / f for g, f in bounds})
    return table
