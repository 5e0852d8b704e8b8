#!/usr/bin/env bash
# README "Memory of train is bounded independently of the store size": the same training
# (d_model 64, d_sae 4096, batch 4096, shuffle window 65536 tokens, 16 steps) on a store of
# 40 shards (328k tokens) and one of 160 (1.3M tokens; 8192-token shards, so both hold more
# than the 32 shards the reader keeps open). The peak resident memory of the train process
# (one rank, its getrusage maximum) must not grow with the store: at most 5% + 8 MB more on
# the store 4x larger (its rows alone would add 252 MB), and it must lie within the README's
# formula: 2 x shuffle window + 2 read-ahead batches (rows x d_model floats) + 24 bytes per
# parameter (2 d_model d_sae + d_sae + d_model) + the batch's pre-activations (rows x d_sae
# floats) + 2 MB per open shard (the file's metadata: whole chunks are read past HDF5's chunk
# cache; 32 open at most), plus the process' fixed cost (MPI, HDF5, BLAS, the program), measured as the peak of
# a training run with every one of those terms tiny.
source "$(dirname "$0")/lib.sh" "$1"
export OMP_NUM_THREADS=1
job() {  # job NAME N_TOKENS D_SAE BATCH SHUFFLE STORE
  cat > "$1.toml" <<T
[run]
name = "$1"
dir = "run_$1"
[harvest]
n_tokens = $2
context = 64
shard_tokens = 8192
[harvest.synthetic]
d_model = 64
n_features = 256
mean_active = 4.0
[train]
activations = "$6"
d_sae = $3
k = 8
auxk = 32
batch_tokens = $4
shuffle_tokens = $5
init_tokens = 4096
n_tokens = $((16 * $4))
checkpoint_every = 0
T
}
# peak_kb NAME: runs saepipe-train on NAME.toml as one process and prints its peak RSS in KB.
peak_kb() {
  $PY - "$BIN/saepipe-train" "$1.toml" <<'P'
import resource, subprocess, sys
r = subprocess.run([sys.argv[1], "--job", sys.argv[2]], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
if r.returncode != 0:
    sys.exit("train failed: " + r.stderr[-500:])
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
P
}
job small 327680 4096 4096 65536 run_small/activations
job big 1310720 4096 4096 65536 run_big/activations
job base 327680 64 256 4096 run_small/activations
for j in small big; do
  "$BIN/saepipe-harvest" --job $j.toml > harvest_$j.log 2>&1 || { fail "harvest $j: $(tail -3 harvest_$j.log)"; finish; }
done
small=$(peak_kb small) || { fail "train on the small store"; finish; }
big=$(peak_kb big) || { fail "train on the big store"; finish; }
base=$(peak_kb base) || { fail "train with tiny buffers"; finish; }
$PY - "$small" "$big" "$base" <<'P' && pass "train's peak memory does not grow with the store and fits the README's formula" || fail "train memory"
import sys
small, big, base = (int(v) * 1024 for v in sys.argv[1:4])
D, F, B, S = 64, 4096, 4096, 65536
params = 2 * D * F + F + D
formula = 4 * (2 * S * D) + 4 * (2 * B * D) + 24 * params + 4 * B * F + 32 * 2 * 2**20
store_growth = (1310720 - 327680) * D * 4
mb = lambda b: f"{b / 2**20:.1f} MB"  # noqa: E731
print(f"peak RSS: store of 40 shards {mb(small)}, of 160 shards {mb(big)} (its rows: +{mb(store_growth)}); "
      f"fixed cost {mb(base)}; README formula {mb(formula)}, bound {mb(formula + base)}")
ok = big <= small * 1.05 + 8 * 2**20
ok &= small <= formula + base and big <= formula + base
# The formula is not a loose bound: what grows over the fixed cost is a large share of it
# (measured 0.48 with the whole-chunk reader: the 32 open shards' 2 MB are an upper bound; a CUDA build's fixed cost is ~210 MB more, cuBLAS and NCCL loaded, but it cancels here).
ok &= small - base >= 0.4 * formula
sys.exit(0 if ok else 1)
P
finish
