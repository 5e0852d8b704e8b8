"""The report's CPU sections that run saepipe's own programs: the kernels (Google Benchmark),
the stats stage next to a plain torch encode pass (bench/bench_stats.sh), and whole stages
over 1, 2, 4 MPI ranks (strong and weak scaling)."""
import json
import os
import shutil
import time

from report_common import SRC, Row, RunError, Table, run


def google_benchmark(ctx):
    path = os.path.join(ctx.out, "kernels.json")
    args = [os.path.join(ctx.build, "bench", "bench_train_step"), f"--benchmark_out={path}",
            "--benchmark_out_format=json", f"--benchmark_min_time={0.5 if ctx.quick else 2}"]
    if ctx.quick:
        args.append("--benchmark_filter=/64/|/1024/")
    run(args, ctx, ctx.path("kernels.log"))
    rows = []
    for b in json.load(open(path))["benchmarks"]:
        scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b["time_unit"]]
        ms = b["real_time"] * scale
        tokens = b.get("tokens")
        if tokens is None and b["name"].startswith("BM_sgemm_peak/"):  # the encoder product alone, N tokens
            tokens = int(b["name"].split("/")[1]) / (ms / 1e3)
        rows.append({"name": b["name"], "ms": ms, "gflops": b.get("GFLOPs", 0.0), "tokens_per_s": tokens})
    return rows


def stats_table(ctx, commit, peak_gflops):
    """The stats stage's wall time at two held-out sizes, next to the torch encode pass."""
    d, f, k, tokens = (64, 512, 8, "32768 131072") if ctx.quick else (768, 24576, 32, "131072 524288")
    work = os.path.join(ctx.work, "stats_bench")
    try:
        run(["bash", os.path.join(SRC, "bench", "bench_stats.sh"), "--build", ctx.build, "--out", work, "--d", d,
             "--f", f, "--k", k, "--tokens", tokens, "--threads", ctx.threads, "--python", ctx.py], ctx,
            ctx.path("stats_bench.log"), timeout=3600)
        r = json.load(open(os.path.join(work, "stats_bench.json")))
        ref = r["torch_encode"]
        rows = [Row("", f"saepipe {commit} stats stage, {x['tokens']} held-out tokens",
                    {"tokens_per_s": x["tokens_per_s"], "min": x["tokens_per_s"], "max": x["tokens_per_s"], "n": 1},
                    extra={"rss": str(x["peak_rss_mib"])}, saepipe=i == len(r["runs"]) - 1)
                for i, x in enumerate(r["runs"])]
        rows.append(Row("", f"torch {ref['torch']} encode + top-k + counts, one pass",
                        {"tokens_per_s": ref["tokens_per_s"], "min": ref["min_tokens_per_s"],
                         "max": ref["max_tokens_per_s"], "n": ref["batches"]}, extra={"rss": str(ref["peak_rss_mib"])}))
    except (RunError, OSError, ValueError, KeyError) as e:
        rows = [Row("", "saepipe stats stage", error=str(e), saepipe=True)]
    flop = 2 * d * f
    return Table(
        title="Stats stage (cpu)", group_header="", rows=rows,
        bound_tokens_per_s=peak_gflops * 1e9 / flop,
        bound_text=f"one encoder GEMM per token (2·d·d_sae = {flop / 1e6:.2f} MFLOP) at the measured peak "
                   f"{peak_gflops:.0f} GFLOP/s",
        extra_headers=[("rss", "peak RSS MiB")],
        notes=[f"d_model {d}, d_sae {f}, k {k}, 1 rank, {ctx.threads} threads. **What is timed**: saepipe: the "
               "wall time of the whole `saepipe-stats` run (start-up, reading the float16 store, the encode pass "
               "and the second pass over its codes, writing features.h5 / examples.h5 / summary.json) divided "
               "into the held-out tokens; torch (`bench/peers/stats_torch_encode.py`, the venv's torch): one "
               "encode + top-k + fire counts + maxima pass over a batch of 4096 already in memory, the median "
               "of 6 batches after one warm-up — a subset of the stage's work, without I/O. The larger run is "
               "the one compared. Peak memory must not grow with the number of tokens."],
        chart="stats_tokens_per_s.svg")


def stage_job(path, run_dir, n_tokens, d, f, k):
    open(path, "w").write(f"""[run]
name = "bench"
dir = "{run_dir}"
[harvest]
n_tokens = {n_tokens}
context = 128
shard_tokens = 16384
[harvest.synthetic]
d_model = {d}
n_features = {2 * d}
mean_active = 8.0
[train]
d_sae = {f}
k = {k}
batch_tokens = 4096
n_tokens = {n_tokens}
lr = 0.001
checkpoint_every = 0
""")


def stage_times(ctx, ranks, n_tokens, d, f, k):
    """Tokens/s of each stage run alone with `saepipe run --only STAGE --ranks N` (wall time)."""
    run_dir = ctx.path("scaling", f"r{ranks}_{n_tokens}")
    shutil.rmtree(run_dir, ignore_errors=True)
    job = run_dir + ".toml"
    stage_job(job, run_dir, n_tokens, d, f, k)
    env = ctx.env()
    env["OMP_NUM_THREADS"] = str(max(1, ctx.threads // ranks))
    times = {}
    for stage in ("harvest", "train", "stats"):
        t0 = time.perf_counter()
        run([os.path.join(ctx.build, "saepipe"), "run", job, "--only", stage, "--ranks", ranks], ctx,
            f"{run_dir}_{stage}.log", env=env)
        times[stage] = time.perf_counter() - t0
    heldout = json.load(open(os.path.join(run_dir, "stats", "summary.json")))["n_tokens"]
    return {"harvest": n_tokens / times["harvest"], "train": n_tokens / times["train"], "stats": heldout / times["stats"]}


def scaling(ctx):
    d, f, k = (32, 128, 4) if ctx.quick else (128, 1024, 16)
    base = 65536 if ctx.quick else 262144
    ranks = [1, 2, 4]
    strong = {r: stage_times(ctx, r, base, d, f, k) for r in ranks}
    weak = {r: stage_times(ctx, r, base * r, d, f, k) for r in ranks}
    return {"d": d, "f": f, "k": k, "base": base, "ranks": ranks, "strong": strong, "weak": weak}
