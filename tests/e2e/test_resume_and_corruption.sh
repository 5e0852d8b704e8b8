#!/usr/bin/env bash
# Harvest resume (lost shards are rewritten, the rest kept, the store identical), a flipped
# byte in a shard (exit 3 naming it), NaN in a shard (exit 3 naming shard and row), and a
# store from another job in the way (exit 2).
source "$(dirname "$0")/lib.sh" "$1"
cat > h.toml <<'T'
[run]
name = "res"
dir = "run"
[harvest]
n_tokens = 32768
context = 128
shard_tokens = 8192
dtype = "bfloat16"
[harvest.synthetic]
d_model = 16
n_features = 32
mean_active = 2.0
[train]
d_sae = 64
k = 2
n_tokens = 8192
batch_tokens = 1024
T
mpirun_np 2 "$BIN/saepipe-harvest" --job h.toml >h1.log 2>&1 || fail "first harvest"
cp -r run/activations reference
rm run/activations/shard-00001.h5 run/activations/manifest.json
touch run/activations/shard-00002.h5.tmp   # debris of an interrupted write
mpirun_np 2 "$BIN/saepipe-harvest" --job h.toml >h2.log 2>&1 || fail "second harvest"
grep -q "1 shard(s) written, 3 kept" h2.log && pass "re-run rewrote only the lost shard" || { fail "resume counts"; cat h2.log; }
$PY - <<'P' && pass "resumed store identical to the uninterrupted one" || fail "resumed store differs"
import h5py, numpy as np, sys
h = "activations/blocks.0.hook_resid_post"
a = h5py.File("reference/activations.h5")[h][...]
b = h5py.File("run/activations/activations.h5")[h][...]
sys.exit(0 if a.shape == (32768, 16) and np.array_equal(a, b) else 1)
P

# Corruption: flip one byte inside the first data chunk of shard 2.
cp -r reference corrupt
$PY - <<'P'
import h5py
with h5py.File("corrupt/shard-00002.h5", "r") as f:
    off = f["activations/blocks.0.hook_resid_post"].id.get_chunk_info(0).byte_offset
with open("corrupt/shard-00002.h5", "r+b") as g:
    g.seek(off + 100); b = g.read(1); g.seek(off + 100); g.write(bytes([b[0] ^ 0x10]))
P
sed 's/^d_sae = 64/activations = "corrupt"\nd_sae = 64/' h.toml | sed 's/dir = "run"/dir = "run_corrupt"/' > c.toml
expect_error 3 "corrupt/shard-00002.h5: /activations/blocks.0.hook_resid_post: read failed (checksum mismatch" -- mpirun_np 2 "$BIN/saepipe-train" --job c.toml

# NaN written through h5py (checksums valid): exit 3 naming shard and global row.
cp -r reference nan
$PY - <<'P'
import h5py, numpy as np
with h5py.File("nan/shard-00003.h5", "r+") as f:
    d = f["activations/blocks.0.hook_resid_post"]
    row = d[5]; row[3] = np.nan; d[5] = row
P
sed 's/^d_sae = 64/activations = "nan"\nd_sae = 64/' h.toml | sed 's/dir = "run"/dir = "run_nan"/' > n.toml
expect_error 3 "shard-00003.h5.*24581" -- mpirun_np 2 "$BIN/saepipe-train" --job n.toml

# A store written by another job is not silently reused or overwritten.
sed 's/mean_active = 2.0/mean_active = 3.0/' h.toml > other.toml
expect_error 2 "different job" -- mpirun_np 2 "$BIN/saepipe-harvest" --job other.toml
finish
