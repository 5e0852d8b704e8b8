"""What the report's sections share: the run's settings, running a program that writes JSON,
the timing summary every implementation gets (median of the steps after the warm-up), and a
table of results that report.py writes as Markdown."""
import json
import os
import statistics
import subprocess
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
PEERS = os.path.join(HERE, "peers")


@dataclass
class Ctx:
    build: str      # saepipe's build directory
    out: str        # the report's directory
    work: str       # scratch, removed at the end
    py: str         # the venv's python (scripts/python_env.sh): torch, transformers, sae-lens, sparsify
    threads: int    # for every implementation
    device: str     # cpu | cuda
    quick: bool
    gpu_bin: str = ""  # saepipe_bench_gpu, saepipe_gpt2_cuda (--device cuda)

    def env(self, **extra):
        """Every process gets the same thread count (OpenMP, OpenBLAS, MKL, torch)."""
        t = str(self.threads)
        return dict(os.environ, OMP_NUM_THREADS=t, OPENBLAS_NUM_THREADS=t, MKL_NUM_THREADS=t,
                    TOKENIZERS_PARALLELISM="false", **extra)

    def path(self, *parts):
        p = os.path.join(self.work, *parts)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p


class RunError(Exception):
    pass


def run(cmd, ctx, log, timeout=1800, env=None):
    """Runs cmd with its output in `log`; RunError with the last lines of it on failure."""
    with open(log, "w") as f:
        try:
            r = subprocess.run([str(c) for c in cmd], stdout=f, stderr=subprocess.STDOUT, env=env or ctx.env(),
                               timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RunError(f"timed out after {timeout} s: {' '.join(map(str, cmd[:3]))} ...")
        except OSError as e:  # a program that is not there (not built, no CUDA build)
            raise RunError(f"cannot run {cmd[0]}: {e.strerror}")
    if r.returncode != 0:
        tail = open(log, errors="replace").read().strip().splitlines()[-3:]
        raise RunError(f"exit {r.returncode}: " + " | ".join(tail)[-400:])


def run_json(cmd, json_path, ctx, timeout=1800, env=None):
    run(cmd, ctx, json_path + ".log", timeout, env)
    try:
        return json.load(open(json_path))
    except (OSError, ValueError) as e:
        raise RunError(f"no result in {json_path}: {e}")


def summarize(seconds, warmup, tokens_per_step):
    """tokens/s as the median of the steps after the warm-up, and the slowest and fastest."""
    timed = seconds[warmup:]
    if not timed:
        raise RunError("no timed steps")
    return {"tokens_per_s": tokens_per_step / statistics.median(timed),
            "min": tokens_per_step / max(timed), "max": tokens_per_step / min(timed), "n": len(timed)}


@dataclass
class Row:
    group: str            # rows compared with each other (the same setting / model)
    impl: str             # implementation and version
    result: dict = None   # summarize()'s output, or None when it failed
    error: str = ""
    extra: dict = field(default_factory=dict)   # further columns
    saepipe: bool = False  # the row other rows of its group are compared with


@dataclass
class Table:
    title: str
    group_header: str
    rows: list
    bound_tokens_per_s: float     # the machine's bound for this work
    bound_text: str               # how it was obtained
    extra_headers: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    chart: str = ""               # SVG file name
    group_bounds: dict = field(default_factory=dict)  # per-group bounds, where groups differ (models)
    peak_gflops: float = 0.0      # the measured GEMM peak the bound comes from

    def bound(self, group):
        return self.group_bounds.get(group, self.bound_tokens_per_s)
