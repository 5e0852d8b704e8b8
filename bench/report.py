"""Benchmark report: saepipe next to the tools a user would otherwise pick, measured in one run
on this machine and written as Markdown with SVG charts:
  - the TopK train step next to eai-sparsify's and SAELens' own training steps (AuxK idle and
    with 10% dead latents; bench/report_train.py),
  - the harvest's model forward next to Hugging Face transformers', per model family
    (bench/harvest_models.py; bench/report_harvest.py),
  - the stats stage next to a plain torch encode pass,
  - on the CPU also the kernels (Google Benchmark) and whole stages over 1, 2, 4 MPI ranks.
Every table gives tokens/s (median of the steps after a warm-up), saepipe's figure as a share of
the machine's bound (measured sgemm peak) and the ratios; the peers run from the venv of
scripts/python_env.sh with the same number of threads.

  /usr/bin/python3 bench/report.py [--build build] [--out bench-report] [--quick]
                                   [--device cpu|cuda] [--threads 2] [--python VENV_PY]
                                   [--only train,harvest,stats,kernels,scaling]
--quick: small shapes, peers included (about a minute). --device cuda: the train and harvest
comparisons on the GPU: saepipe_bench_gpu and saepipe_gpt2_cuda from a CUDA build (--gpu-bin:
where they are, e.g. a device bundle's bin/), the peers from --python (a python with torch,
transformers, sae-lens and eai-sparsify; a peer it lacks is reported as failed)."""
import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report_svg  # noqa: E402
from report_common import SRC, Ctx, RunError, run  # noqa: E402
from report_harvest import harvest_table  # noqa: E402
from report_stages import google_benchmark, scaling, stats_table  # noqa: E402
from report_train import train_table  # noqa: E402

SECTIONS = ("train", "harvest", "stats", "kernels", "scaling")


def sh(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
    mem = int(open("/proc/meminfo").readline().split()[1]) // 1024
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_mib": mem, "kernel": platform.release(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": git("rev-parse", "--short", "HEAD") or "unknown",
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def git(*args):
    """git's output in the source tree, or "" where there is none (a copy on a GPU machine)."""
    try:
        return sh(["git", "-C", SRC, *args])
    except (subprocess.CalledProcessError, FileNotFoundError):
        return ""


def load_average():
    return open("/proc/loadavg").read().split()[0]


def keep_logs(work, dest):
    """Every program's log and JSON result, for reading after the scratch files are gone."""
    shutil.rmtree(dest, ignore_errors=True)
    for root, _, files in os.walk(work):
        for f in files:
            if f.endswith((".log", ".json")) and "checkpoint" not in root:
                rel = os.path.relpath(os.path.join(root, f), work)
                os.makedirs(os.path.join(dest, os.path.dirname(rel)), exist_ok=True)
                shutil.copy(os.path.join(root, f), os.path.join(dest, rel))


def fmt_tok(v):
    return f"{v:.0f}" if v >= 100 else f"{v:.3g}"


def table_md(t):
    """Rows with tokens/s, range, share of the bound and saepipe ÷ this, plus the extra columns."""
    cols = ["implementation"] + ([t.group_header] if t.group_header else []) + \
        ["tokens/s", "min – max", "share of bound", "saepipe ÷ this"] + [h for _, h in t.extra_headers]
    md = ["| " + " | ".join(cols) + " |", "|" + "---|" * (2 if t.group_header else 1) + "---:|" * (len(cols) - (2 if t.group_header else 1))]
    failed = []
    for row in t.rows:
        ref = next((r for r in t.rows if r.saepipe and r.group == row.group and r.result), None)
        lead = [row.impl] + ([row.group] if t.group_header else [])
        if row.result is None:
            failed.append(f"- {row.impl} ({row.group}): {row.error}" if row.group else f"- {row.impl}: {row.error}")
            md.append("| " + " | ".join(lead + ["failed"] + [""] * (len(cols) - len(lead) - 1)) + " |")
            continue
        r = row.result
        bound = t.bound(row.group)
        share = f"{100 * r['tokens_per_s'] / bound:.1f}%" if bound else "unmeasured"
        ratio = f"{ref.result['tokens_per_s'] / r['tokens_per_s']:.2f}×" if ref else "no saepipe figure"
        rng = f"{fmt_tok(r['min'])} – {fmt_tok(r['max'])}" if r["n"] > 1 else f"{fmt_tok(r['tokens_per_s'])} (one run)"
        md.append("| " + " | ".join(lead + [fmt_tok(r["tokens_per_s"]), rng, share, ratio] +
                                     [row.extra.get(k, "") for k, _ in t.extra_headers]) + " |")
    md.append("")
    md.append(f"Bound: {t.bound_text}.")
    if failed:
        md += ["", "**Failed:**"] + failed
    return md


def chart(t, out):
    rows = [(r.impl if len(r.impl) < 60 else r.impl[:57] + "...", r.result["tokens_per_s"], r.group or t.title)
            for r in t.rows if r.result]
    if rows:
        open(os.path.join(out, t.chart), "w").write(report_svg.bars(t.title + ": tokens/s", rows))
        return [f"![{t.title}]({t.chart})", ""]
    return []


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--out", default="bench-report")
    ap.add_argument("--quick", action="store_true", help="small shapes (about a minute), peers included")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=2, help="for every implementation (default 2)")
    ap.add_argument("--python", help="the venv's python (default: scripts/python_env.sh builds or finds it)")
    ap.add_argument("--gpu-bin", help="where saepipe_bench_gpu and saepipe_gpt2_cuda are (default: --build)")
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections: " + ",".join(SECTIONS))
    a = ap.parse_args()
    only = a.only.split(",")
    if bad := [s for s in only if s not in SECTIONS]:
        ap.error(f"--only: unknown section(s) {bad}; known: {','.join(SECTIONS)}")
    if a.device == "cuda":
        only = [s for s in only if s in ("train", "harvest")]  # the others have no CUDA path yet
    out = os.path.abspath(a.out)
    os.makedirs(out, exist_ok=True)
    py = a.python or sh(["bash", os.path.join(SRC, "scripts", "python_env.sh")])
    ctx = Ctx(build=os.path.abspath(a.build), out=out, work=os.path.join(out, "work"), py=py, threads=a.threads,
              device=a.device, quick=a.quick, gpu_bin=os.path.abspath(a.gpu_bin or a.build))
    shutil.rmtree(ctx.work, ignore_errors=True)
    os.makedirs(ctx.work)
    m, load0, t_start = machine(), load_average(), time.time()
    versions = json.loads(sh([py, "-c", "import json; from importlib.metadata import version as v, PackageNotFoundError\n"
                                        "def w(n):\n try: return v(n)\n except PackageNotFoundError: return 'missing'\n"
                                        "print(json.dumps({n: w(n) for n in ('torch', 'transformers', 'sae-lens', "
                                        "'eai-sparsify')}))"]))

    peaks = {}

    def peak_gflops(n, d, f):
        """The measured sgemm peak at [n,d]x[d,f] (bench_step_timed --sgemm), once per shape."""
        if (n, d, f) not in peaks:
            p = ctx.path(f"sgemm_{n}_{d}_{f}.json")
            run([os.path.join(ctx.build, "bench", "bench_step_timed"), "--sgemm", f"{n},{d},{f}", "--json", p],
                ctx, p + ".log")
            peaks[(n, d, f)] = json.load(open(p))["sgemm"]["gflops"]
        return peaks[(n, d, f)]

    tables, kernels, scale = [], None, None
    took = {}

    def timed(name, fn, *args):
        print(f"{name} ...", file=sys.stderr)
        t0 = time.time()
        result = fn(*args)
        took[name] = time.time() - t0
        print(f"{name}: {took[name]:.0f} s", file=sys.stderr)
        return result

    if "train" in only:
        tables.append(timed("train", train_table, ctx, m["commit"], peak_gflops))
    # The harvest and stats bounds: the sgemm peak at the big encoder shape (a small one in --quick).
    big = (1024, 768, 4096) if a.quick else (4096, 768, 24576)
    if "harvest" in only:
        # On the GPU: its fp32 GEMM peak, measured by saepipe_bench_gpu in the train section.
        peak = next((t.peak_gflops for t in tables), 0.0) if a.device == "cuda" else peak_gflops(*big)
        tables.append(timed("harvest", harvest_table, ctx, m["commit"], peak))
    if "stats" in only:
        tables.append(timed("stats", stats_table, ctx, m["commit"], peak_gflops(*big)))
    if "kernels" in only:
        kernels = timed("kernels", google_benchmark, ctx)
    if "scaling" in only:
        scale = timed("scaling", scaling, ctx)
    minutes = (time.time() - t_start) / 60

    md = ["# saepipe benchmark report", "",
          f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_mib']} MiB, Linux {m['kernel']}; {m['date']}; "
          f"commit {m['commit']}{' (with uncommitted changes)' if m['dirty'] else ''}; device {a.device}. "
          f"Every figure below was measured in this one run ({minutes:.1f} minutes: "
          f"{', '.join(f'{k} {v:.0f} s' for k, v in took.items())}"
          f"{', --quick: small shapes' if a.quick else ''}), each implementation with {a.threads} threads. "
          f"Load average at the start {load0}, at the end {load_average()} (a figure above the core count means "
          f"other work shared the machine: compare ratios within this run, not absolute figures across runs).", "",
          f"Peers (the venv of scripts/python_env.sh): torch {versions['torch']}, transformers "
          f"{versions['transformers']}, sae-lens {versions['sae-lens']}, eai-sparsify {versions['eai-sparsify']}.",
          "", f"Command: `/usr/bin/python3 bench/report.py {' '.join(sys.argv[1:])}`", ""]
    for t in tables:
        md += [f"## {t.title}", ""] + table_md(t) + [""] + chart(t, out) + [n for n in t.notes] + [""]
    if kernels:
        md += [f"## Kernels and the train step (Google Benchmark, {a.threads} threads)", "",
               "| benchmark | ms/iter | GFLOP/s | tokens/s |", "|---|---:|---:|---:|"]
        md += [f"| {r['name']} | {r['ms']:.2f} | {r['gflops']:.1f} | {r['tokens_per_s']:.0f} |" for r in kernels]
        md += ["", "BM_sgemm_peak/N/D/F: the encoder product alone for N tokens (its tokens/s is the train step's "
               "bound at that shape); BM_train_step/D/F/K/N/dead‰: the step of bench_step_timed, Google "
               "Benchmark's mean over at least 2 s.", ""]
    if scale:
        for name, note in (("strong", f"{scale['base']} tokens whatever the ranks"),
                           ("weak", f"{scale['base']} tokens per rank")):
            data = scale[name]
            series = {s: [data[r][s] for r in scale["ranks"]] for s in ("harvest", "train", "stats")}
            open(os.path.join(out, f"scaling_{name}.svg"), "w").write(
                report_svg.lines(f"{name} scaling: tokens/s per stage", scale["ranks"], series, "tokens/s"))
            md += [f"## {name.capitalize()} scaling of whole stages ({note}; d_model {scale['d']}, d_sae {scale['f']}, "
                   f"k {scale['k']})", "", "| ranks | harvest tokens/s | train tokens/s | stats tokens/s |",
                   "|---:|---:|---:|---:|"]
            md += [f"| {r} | {data[r]['harvest']:.0f} | {data[r]['train']:.0f} | {data[r]['stats']:.0f} |"
                   for r in scale["ranks"]]
            md += ["", f"![{name} scaling](scaling_{name}.svg)", ""]
        md.append(f"OpenMP threads per rank = {a.threads} / ranks (at least 1): with more ranks than cores the "
                  "ranks share them, so this measures overhead, not speed-up.")
    open(os.path.join(out, "report.md"), "w").write("\n".join(md) + "\n")
    keep_logs(ctx.work, os.path.join(out, "logs"))
    shutil.rmtree(ctx.work, ignore_errors=True)
    print(os.path.join(out, "report.md"))


if __name__ == "__main__":
    try:
        main()
    except RunError as e:
        sys.exit(f"report.py: {e}")
