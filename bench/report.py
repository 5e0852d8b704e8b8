"""Benchmark report: kernels (Google Benchmark), the train step next to a plain PyTorch
step, and whole stages over 1, 2, 4 MPI ranks (strong and weak scaling), measured in one run
on this machine, written as Markdown with SVG plots.
Usage: /usr/bin/python3 bench/report.py [--build build] [--out bench-report] [--quick]"""
import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def machine():
    cpu = "unknown"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = int(open("/proc/meminfo").readline().split()[1]) // 1024
    commit = sh(["git", "-C", SRC, "rev-parse", "--short", "HEAD"]).strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_mib": mem, "kernel": platform.release(),
            "date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), "commit": commit}


def google_benchmark(build, out, quick):
    path = os.path.join(out, "kernels.json")
    args = [os.path.join(build, "bench", "bench_train_step"), f"--benchmark_out={path}", "--benchmark_out_format=json"]
    if quick:
        args.append("--benchmark_filter=/64/|/1024/")
    sh(args)
    rows = []
    for b in json.load(open(path))["benchmarks"]:
        scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b["time_unit"]]
        rows.append({"name": b["name"], "ms": b["real_time"] * scale, "gflops": b.get("GFLOPs", 0.0),
                     "tokens_per_s": b.get("tokens")})
    return rows


def torch_step(cfg):
    try:
        return json.loads(sh(["/usr/bin/python3", os.path.join(HERE, "torch_topk_step.py"), *map(str, cfg), "2"]))
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        return {"error": str(e)}


def harvest_gpt2(build, out):
    """saepipe's GPT-2-small-shaped harvest next to PyTorch's forward pass (bench_harvest_gpt2.sh)."""
    env = dict(os.environ, BENCH_WORK=os.path.join(out, "gpt2-work"))
    try:
        text = sh(["bash", os.path.join(HERE, "bench_harvest_gpt2.sh"), build, "16", str(os.cpu_count())], env=env)
    except subprocess.CalledProcessError as e:
        return {"error": (e.stderr or e.stdout or str(e))[-300:]}
    finally:
        shutil.rmtree(env["BENCH_WORK"], ignore_errors=True)
    last = [l for l in text.splitlines() if l.startswith("saepipe harvest:")]
    if not last:
        return {"error": "no result line"}
    nums = [float(w) for w in last[-1].replace(",", " ").split() if w.replace(".", "", 1).isdigit()]
    return {"ours": nums[0], "torch": nums[1], "ratio": nums[2]} if len(nums) >= 3 else {"error": last[-1]}


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


def stage_times(build, work, ranks, n_tokens, d, f, k):
    """Wall seconds of each stage run alone with `saepipe run --only STAGE --ranks N`."""
    run_dir = os.path.join(work, f"r{ranks}_{n_tokens}")
    shutil.rmtree(run_dir, ignore_errors=True)
    job = run_dir + ".toml"
    stage_job(job, run_dir, n_tokens, d, f, k)
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, os.cpu_count() // ranks)))
    times = {}
    for stage in ("harvest", "train", "stats"):
        t0 = time.perf_counter()
        subprocess.run([os.path.join(build, "saepipe"), "run", job, "--only", stage, "--ranks", str(ranks)],
                       check=True, capture_output=True, env=env)
        times[stage] = time.perf_counter() - t0
    heldout = json.load(open(os.path.join(run_dir, "stats", "summary.json")))["n_tokens"]
    return {"harvest": n_tokens / times["harvest"], "train": n_tokens / times["train"], "stats": heldout / times["stats"]}


def stats_bench(build, out, quick):
    """bench/bench_stats.sh: stats tokens/s and peak memory at two held-out sizes, next to a
    plain PyTorch encode pass measured in the same run."""
    d, f, k, tokens = (64, 512, 8, "32768 131072") if quick else (768, 24576, 32, "262144 1048576")
    work = os.path.join(out, "work", "stats_bench")
    try:
        sh(["bash", os.path.join(SRC, "bench", "bench_stats.sh"), "--build", build, "--out", work,
            "--d", str(d), "--f", str(f), "--k", str(k), "--tokens", tokens])
        return json.load(open(os.path.join(work, "stats_bench.json")))
    except (subprocess.CalledProcessError, OSError, ValueError) as e:
        return {"error": str(e)}


def svg_lines(title, xs, series, ylabel):
    """A small line chart as SVG text (no plotting library needed)."""
    W, H, L, B = 420, 260, 60, 40
    ymax = max(max(v) for v in series.values()) * 1.15 or 1
    def px(i): return L + (W - L - 20) * (i / max(1, len(xs) - 1))
    def py(v): return H - B - (H - B - 30) * v / ymax
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
           f'<text x="{W/2}" y="16" text-anchor="middle" font-size="13">{title}</text>',
           f'<line x1="{L}" y1="{H-B}" x2="{W-10}" y2="{H-B}" stroke="#000"/><line x1="{L}" y1="30" x2="{L}" y2="{H-B}" stroke="#000"/>',
           f'<text x="14" y="{H/2}" transform="rotate(-90 14 {H/2})" text-anchor="middle">{ylabel}</text>']
    for i, x in enumerate(xs):
        out.append(f'<text x="{px(i)}" y="{H-B+16}" text-anchor="middle">{x} rank{"s" if x > 1 else ""}</text>')
    for t in range(5):
        v = ymax * t / 4
        out.append(f'<text x="{L-4}" y="{py(v)+4}" text-anchor="end">{v:.3g}</text>')
    for c, (name, vals) in zip(colors, series.items()):
        pts = " ".join(f"{px(i)},{py(v)}" for i, v in enumerate(vals))
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{pts}"/>')
        out.append(f'<text x="{W-70}" y="{40 + 14 * list(series).index(name)}" fill="{c}">{name}</text>')
    out.append("</svg>")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--out", default="bench-report")
    ap.add_argument("--quick", action="store_true", help="small sizes (a minute), for checking the script")
    a = ap.parse_args()
    build, out = os.path.abspath(a.build), os.path.abspath(a.out)
    os.makedirs(out, exist_ok=True)
    work = os.path.join(out, "work")
    os.makedirs(work, exist_ok=True)
    m = machine()
    print("kernels ...", file=sys.stderr)
    kernels = google_benchmark(build, out, a.quick)
    cfg = (64, 512, 8, 4096) if a.quick else (768, 24576, 32, 4096)
    print("pytorch reference ...", file=sys.stderr)
    ref = torch_step(cfg)
    ours = next((r for r in kernels if r["name"].startswith(f"BM_train_step/{cfg[0]}/{cfg[1]}/{cfg[2]}/{cfg[3]}/0")), None)
    d, f, k = (32, 128, 4) if a.quick else (128, 1024, 16)
    base = 65536 if a.quick else 524288
    ranks = [1, 2, 4]
    gpt2 = None
    if not a.quick:
        print("GPT-2 harvest vs PyTorch ...", file=sys.stderr)
        gpt2 = harvest_gpt2(build, out)
    print("stats stage throughput and memory ...", file=sys.stderr)
    stats = stats_bench(build, out, a.quick)
    print("stages, strong scaling ...", file=sys.stderr)
    strong = {r: stage_times(build, work, r, base, d, f, k) for r in ranks}
    print("stages, weak scaling ...", file=sys.stderr)
    weak = {r: stage_times(build, work, r, base * r, d, f, k) for r in ranks}
    shutil.rmtree(work, ignore_errors=True)

    for name, data in (("strong", strong), ("weak", weak)):
        series = {s: [data[r][s] for r in ranks] for s in ("harvest", "train", "stats")}
        open(os.path.join(out, f"scaling_{name}.svg"), "w").write(
            svg_lines(f"{name} scaling: tokens/s per stage", ranks, series, "tokens/s"))
    md = [f"# saepipe benchmark report\n",
          f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_mib']} MiB, Linux {m['kernel']}; "
          f"{m['date']}; commit {m['commit']}. Every figure below was measured in this one run.\n",
          "## Kernels and the train step (Google Benchmark)\n",
          "| benchmark | ms/iter | GFLOP/s | tokens/s |", "|---|---:|---:|---:|"]
    for r in kernels:
        tok = f"{r['tokens_per_s']:.0f}" if r["tokens_per_s"] else ""
        md.append(f"| {r['name']} | {r['ms']:.2f} | {r['gflops']:.1f} | {tok} |")
    md.append("\n## Train step against a plain PyTorch TopK step (same config, same machine, same run)\n")
    if "error" in ref or not ours:
        md.append(f"PyTorch reference unavailable: {ref.get('error', 'no matching benchmark')}\n")
    else:
        md += ["| implementation | tokens/s | ratio |", "|---|---:|---:|",
               f"| saepipe CPU (d={cfg[0]}, F={cfg[1]}, k={cfg[2]}, batch {cfg[3]}) | {ours['tokens_per_s']:.0f} | "
               f"{ours['tokens_per_s'] / ref['tokens_per_s']:.1f}x |",
               f"| PyTorch {ref['torch']} dense autograd + Adam, {ref['threads']} threads | {ref['tokens_per_s']:.0f} | 1.0x |\n"]
    if gpt2:
        md.append("## Harvest: GPT-2-small shape (random weights), hook blocks.8.hook_resid_post, context 128\n")
        if "error" in gpt2:
            md.append(f"Unavailable: {gpt2['error']}\n")
        else:
            md += ["| implementation | tokens/s | ratio |", "|---|---:|---:|",
                   f"| saepipe harvest (forward + HDF5 write) | {gpt2['ours']:.0f} | {gpt2['ratio']:.2f}x |",
                   f"| PyTorch forward only, same sequences and threads | {gpt2['torch']:.0f} | 1.0x |\n"]
    if "error" in stats:
        md.append(f"## Stats stage\n\nUnavailable: {stats['error']}\n")
    else:
        md += [f"## Stats stage (d_model {stats['d_model']}, d_sae {stats['d_sae']}, k {stats['k']}, "
               f"{stats['ranks']} rank)\n",
               "| held-out tokens | tokens/s | peak RSS MiB | PyTorch encode+topk+counts, one pass | ratio |",
               "|---:|---:|---:|---:|---:|"]
        for r in stats["runs"]:
            md.append(f"| {r['tokens']} | {r['tokens_per_s']} | {r['peak_rss_mib']} | "
                      f"{r['torch_encode_tokens_per_s']:.0f} | {r['tokens_per_s'] / r['torch_encode_tokens_per_s']:.2f}x |")
        md.append("\nPeak memory must not grow with the number of tokens.\n")
    for name, data, note in (("Strong", strong, f"{base} tokens whatever the ranks"),
                             ("Weak", weak, f"{base} tokens per rank")):
        md += [f"## {name} scaling of whole stages ({note}; d_model {d}, d_sae {f}, k {k})\n",
               "| ranks | harvest tokens/s | train tokens/s | stats tokens/s |", "|---:|---:|---:|---:|"]
        for r in ranks:
            md.append(f"| {r} | {data[r]['harvest']:.0f} | {data[r]['train']:.0f} | {data[r]['stats']:.0f} |")
        md.append(f"\n![{name} scaling](scaling_{name.lower()}.svg)\n")
    md.append(f"Ranks beyond the {m['cores']} cores share them (OMP threads per rank = cores / ranks, "
              "at least 1), so on a small machine more ranks measure overhead, not speed-up.\n")
    open(os.path.join(out, "report.md"), "w").write("\n".join(md))
    print(os.path.join(out, "report.md"))


if __name__ == "__main__":
    main()
