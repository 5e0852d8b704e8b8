#!/usr/bin/env bash
# The train stage with [resources.train] latent_shards on the toy store: one job trains every
# architecture (topk, and batchtopk, relu, jumprelu, matryoshka (prefix bounds inside shards) and
# gated as sweep entries, AuxK, resampling, checkpoints) on grids 1x2, 2x2 and 1x4, and on a 3-hook
# store transcoders (gated with the skip, topk without) and a crosscoder (relu) on 1x2; every
# sae.h5 is within 1e-5 relative of the
# unsharded 1-rank run's, in the same layout, and train_log.jsonl reports the bytes and the
# share of step time spent communicating. Errors, one line and exit 2 each: the rank count not
# divisible by latent_shards, latent_shards > d_sae, d_sae not divisible by it or not a
# multiple of latent_shards x 256 (whole encoder blocks per shard).
# Sharded runs write sae.h5 and train_state.h5 collectively (parallel HDF5, each rank its latent
# range): the same layout as the unsharded run's (h5dump -H, chunks, Fletcher32, dtypes) and
# values within 1e-5 relative (since_fired exact), read back through HDF5's checksums.
# Kill -9 a rank (a shard of the second data group) of a 2x2 run after a checkpoint and re-run
# the same command: the weights are bit-identical to the uninterrupted 2x2 run. The killed run's
# train_state.h5 resumed on other grids (1x4, and 1 rank unsharded: each rank reads its own latent
# range of the file) ends within 1e-5 relative of the uninterrupted 2x2 run.
# (The step itself, and exact resume, under every grid: tests/mpi/test_latent_shards.cpp.)
source "$(dirname "$(dirname "$0")")/e2e/lib.sh" "$1"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
job() {  # job FILE RUN_DIR SHARDS [D_SAE]
  cat > "$1" <<T
[run]
name = "shards"
dir = "$2"
seed = 4
[harvest]
n_tokens = 16384
context = 64
shard_tokens = 8192
[harvest.synthetic]
d_model = 16
n_features = 48
mean_active = 3.0
[resources.train]
latent_shards = $3
[train]
activations = "store/activations"
architecture = "topk"
d_sae = ${4:-1024}
k = 4
batch_tokens = 512
n_tokens = 12288
lr = 0.003
auxk = 16
dead_tokens = 512
resample_every = 10
checkpoint_every = 8
log_every = 4
l1_coef = 0.3
l0_coef = 0.01
[[train.sweep]]
name = "batchtopk"
architecture = "batchtopk"
[[train.sweep]]
name = "relu"
architecture = "relu"
[[train.sweep]]
name = "jumprelu"
architecture = "jumprelu"
[[train.sweep]]
name = "matryoshka"
architecture = "matryoshka"
d_sae = 1024
matryoshka_prefixes = [100, 700]
[[train.sweep]]
name = "gated"
architecture = "gated"
T
}
job store.toml store 1
mpirun_np 1 "$BIN/saepipe-harvest" --job store.toml >harvest.log 2>&1 || { fail "harvest"; cat harvest.log; }
for grid in 1x1 1x2 2x2 1x4; do
  g=${grid%x*} s=${grid#*x}
  job "t$grid.toml" "run$grid" "$s"
  mpirun_np $((g * s)) "$BIN/saepipe-train" --job "t$grid.toml" >"train$grid.log" 2>&1 || { fail "train on grid $grid"; cat "train$grid.log"; }
done
$PY - <<'P' && pass "every architecture: sae.h5 of grids 1x2, 2x2, 1x4 within 1e-5 relative of 1 rank unsharded" || fail "sharded weights differ"
import h5py, numpy as np, sys
ok = True
for model in ("", "sweep/batchtopk/", "sweep/relu/", "sweep/jumprelu/", "sweep/matryoshka/", "sweep/gated/"):
    ref = h5py.File(f"run1x1/sae/{model}sae.h5")
    for grid in ("1x2", "2x2", "1x4"):
        f = h5py.File(f"run{grid}/sae/{model}sae.h5")
        assert set(f.keys()) == set(ref.keys()), (grid, model, set(f.keys()) ^ set(ref.keys()))
        worst = 0.0
        for k in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold"):
            a, b = ref[k][...], f[k][...]
            assert a.shape == b.shape
            worst = max(worst, np.abs(a - b).max() / max(np.abs(a).max(), 1e-30))
        print(f"{model or 'topk/'} grid {grid}: max relative difference {worst:.3g}")
        ok &= bool(worst <= 1e-5)
sys.exit(0 if ok else 1)
P
# The files' layout: h5dump -H (all but its first line, which names the file) identical.
same_layout=1
for grid in 1x2 2x2 1x4; do
  for model in "" sweep/batchtopk/ sweep/relu/ sweep/jumprelu/ sweep/matryoshka/ sweep/gated/; do
    for f in sae.h5 train_state.h5; do
      cmp -s <(h5dump -H "run1x1/sae/$model$f" | sed 1d) <(h5dump -H "run$grid/sae/$model$f" | sed 1d) ||
        { same_layout=0; echo "h5dump -H differs: run$grid/sae/$model$f"; }
    done
  done
done
((same_layout)) && pass "sae.h5 and train_state.h5 of every grid and model: h5dump -H identical to unsharded" ||
  fail "sharded files' layout differs"
$PY - <<'P' && pass "train_state.h5 and sae.h5 of grids 1x2, 2x2, 1x4: written in parallel, same chunks/Fletcher32/dtypes/attributes, within 1e-5 of unsharded" || fail "sharded train_state.h5 or sae.h5 differs"
import h5py, numpy as np, subprocess, sys
ok = True
for model in ("", "sweep/batchtopk/", "sweep/relu/", "sweep/jumprelu/", "sweep/matryoshka/", "sweep/gated/"):
    for grid in ("1x2", "2x2", "1x4"):
        for name in ("sae.h5", "train_state.h5"):
            ref, f = h5py.File(f"run1x1/sae/{model}{name}"), h5py.File(f"run{grid}/sae/{model}{name}")
            ok &= sorted(ref.keys()) == sorted(f.keys())
            for k in ref:
                a, b = ref[k], f[k]
                if (a.shape, a.dtype, a.chunks, a.fletcher32) != (b.shape, b.dtype, b.chunks, b.fletcher32):
                    print(grid, model, name, k, "layout differs"); ok = False
                x, y = a[...], b[...]  # HDF5 verifies each chunk's Fletcher32 checksum on read
                tol = 0 if k == "since_fired" else 1e-5
                rel = np.abs(x.astype(np.float64) - y).max() / max(np.abs(x).max(), 1e-30)
                if rel > tol: print(grid, model, name, k, "relative difference", rel); ok = False
            attrs = sorted(k for k in ref.attrs if k != "resolved_job")
            ok &= sorted(k for k in f.attrs if k != "resolved_job") == attrs
            if name == "train_state.h5": ok &= all(np.array_equal(ref.attrs[k], f.attrs[k]) for k in attrs)
        # The MPI-IO driver allocates a dataset's chunks when it is created; a serial file when
        # they are written: the sharded files were written in parallel, not gathered to rank 0.
        for name, ds in (("train_state.h5", "params"), ("sae.h5", "W_enc")):
            d = subprocess.run(["h5dump", "-H", "-p", "-d", ds, f"run{grid}/sae/{model}{name}"],
                               capture_output=True, text=True).stdout
            if "H5D_ALLOC_TIME_EARLY" not in d: print(grid, model, name, "not written in parallel"); ok = False
sys.exit(0 if ok else 1)
P
grep -q "resampled" train1x4.log && grep -q "resampled" train1x1.log && pass "resampling (and AuxK over dead latents) ran sharded and unsharded" || fail "no resampling"
$PY - <<'P' && pass "train_log.jsonl: comm_bytes_per_step and comm_fraction" || fail "no communication figures in the log"
import json, sys
rec = [json.loads(l) for l in open("run1x4/sae/train_log.jsonl")][-1]
print("1x4 topk last window:", rec["comm_bytes_per_step"], "bytes/step,", rec["comm_fraction"], "of step time")
sys.exit(0 if rec["comm_bytes_per_step"] > 0 and 0 <= rec["comm_fraction"] <= 1 else 1)
P
# Transcoders (gated with the skip: W_skip whole on every shard, r_mag and b_mag per range; topk
# without, a sweep entry) and a crosscoder (relu over 3 layers) on a 3-hook store: 1x2 against 1
# rank unsharded, every dataset of sae.h5 and train_state.h5 and their layout.
hooks='["blocks.0.hook_resid_post", "blocks.1.hook_resid_post", "blocks.2.hook_resid_post"]'
vjob() {  # vjob FILE RUN_DIR SHARDS transcoder|crosscoder
  { cat <<T
[run]
name = "shardsv"
dir = "$2"
seed = 5
[harvest]
hooks = $hooks
n_tokens = 16384
context = 64
shard_tokens = 8192
[harvest.synthetic]
d_model = 16
n_features = 48
mean_active = 3.0
hook_similarity = 0.5
hook_linear = 0.3
hook_noise = 0.01
[resources.train]
latent_shards = $3
[train]
activations = "storev/activations"
d_sae = 512
k = 4
batch_tokens = 512
n_tokens = 8192
lr = 0.003
auxk = 16
dead_tokens = 512
checkpoint_every = 8
log_every = 4
l1_coef = 0.3
T
    if [ "$4" = transcoder ]; then printf '%s\n' 'architecture = "gated"' 'hook = "blocks.0.hook_resid_post"' \
      'target_hook = "blocks.1.hook_resid_post"' 'skip = true' '[[train.sweep]]' 'name = "topk"' \
      'architecture = "topk"' 'skip = false'
    else printf '%s\n' 'architecture = "relu"' "hooks = $hooks"; fi
  } >"$1"
}
vjob storev.toml storev 1 crosscoder
mpirun_np 1 "$BIN/saepipe-harvest" --job storev.toml >harvestv.log 2>&1 || { fail "harvest of the 3-hook store"; cat harvestv.log; }
for v in transcoder crosscoder; do
  for grid in 1x1 1x2; do
    vjob "$v$grid.toml" "$v$grid" "${grid#*x}" $v
    mpirun_np "${grid#*x}" "$BIN/saepipe-train" --job "$v$grid.toml" >"$v$grid.log" 2>&1 || { fail "$v on grid $grid"; cat "$v$grid.log"; }
  done
done
$PY - <<'P' && pass "transcoders (gated + skip, topk) and a crosscoder (relu): 1x2 within 1e-5 relative of unsharded, sae.h5 and train_state.h5 (W_skip, r_mag, b_mag included)" || fail "sharded transcoder or crosscoder differs"
import h5py, numpy as np, sys
ok = True
for run, model in (("transcoder", ""), ("transcoder", "sweep/topk/"), ("crosscoder", "")):
    for name in ("sae.h5", "train_state.h5"):
        ref, f = h5py.File(f"{run}1x1/sae/{model}{name}"), h5py.File(f"{run}1x2/sae/{model}{name}")
        if sorted(ref.keys()) != sorted(f.keys()): print(run, model, name, "datasets differ"); ok = False; continue
        worst = 0.0
        for k in ref:
            x, y = ref[k][...], f[k][...]
            if (x.shape, x.dtype, ref[k].chunks) != (y.shape, y.dtype, f[k].chunks): print(run, model, name, k, "layout differs"); ok = False; continue
            rel = np.abs(x.astype(np.float64) - y).max() / max(np.abs(x).max(), 1e-30)
            if rel > (0 if k == "since_fired" else 1e-5): print(run, model, name, k, "relative difference", rel); ok = False
            worst = max(worst, rel)
        print(f"{run} {model or 'main'} {name}: {len(ref.keys())} datasets, max relative difference {worst:.3g}")
    ok &= all(k in h5py.File(f"{run}1x2/sae/{model}sae.h5") for k in (("W_skip", "r_mag", "b_mag") if run == "transcoder" and not model else ()))
sys.exit(0 if ok else 1)
P
# A 2x2 run killed after a checkpoint and re-run, against the same run uninterrupted (topk only,
# 240 steps so that the kill lands mid-run).
kjob() { job "$1" "$2" 2 && sed -i -e '/^\[\[train.sweep\]\]/,$d' -e 's/^n_tokens = 12288/n_tokens = 122880/' \
  -e 's/^checkpoint_every = 8/checkpoint_every = 20/' "$1"; }
kjob kfull.toml kfull; kjob kpart.toml kpart
mpirun_np 4 "$BIN/saepipe-train" --job kfull.toml >kfull.log 2>&1 || { fail "uninterrupted 2x2 run"; cat kfull.log; }
state_step() { checkpoint_step kpart/sae/train_state.h5; }
mpirun_np 4 "$BIN/saepipe-train" --job kpart.toml >kpart-kill.log 2>&1 &
launcher=$!
wait_for_checkpoint $launcher kpart/sae/train_state.h5 40
victim=$(rank_pid $launcher 3)
if [ -n "$victim" ]; then kill -9 "$victim"; else fail "rank 3 not found (finished already?)"; fi
wait $launcher && fail "2x2 run with rank 3 killed exited 0" || pass "2x2: rank 3 killed by SIGKILL at checkpoint step $(state_step)"
[ ! -e kpart/sae/sae.h5 ] && pass "no sae.h5 after the kill" || fail "sae.h5 exists after the kill"
# The killed run's state, to resume on other grids below.
for g in 1x4 1x1; do mkdir -p "kr$g/sae" && cp kpart/sae/train_state.h5 kpart/sae/train_log.jsonl "kr$g/sae/"; done
mpirun_np 4 "$BIN/saepipe-train" --job kpart.toml >kresume.log 2>&1 || { fail "resumed 2x2 run"; cat kresume.log; }
grep -q "resuming kpart/sae at step" kresume.log && pass "resumed ($(grep -o 'at step [0-9]*' kresume.log))" || { fail "did not resume"; cat kresume.log; }
$PY - <<'P' && pass "killed and resumed 2x2: weights bit-identical to the uninterrupted 2x2 run" || fail "resumed 2x2 weights differ"
import h5py, numpy as np, sys
a, b = h5py.File("kfull/sae/sae.h5"), h5py.File("kpart/sae/sae.h5")
ok = True
for k in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold"):
    same = np.array_equal(a[k][...], b[k][...])
    print(k, "identical" if same else f"differs by {np.abs(a[k][...] - b[k][...]).max():.3g}")
    ok &= same
ok &= len(open("kfull/sae/train_log.jsonl").readlines()) == len(open("kpart/sae/train_log.jsonl").readlines())
sys.exit(0 if ok else 1)
P
# Resharded on load: the 2x2 checkpoint resumed as 1x4 and as 1 rank unsharded.
kjob kr1x4.toml kr1x4 && sed -i 's/^latent_shards = 2/latent_shards = 4/' kr1x4.toml
kjob kr1x1.toml kr1x1 && sed -i 's/^latent_shards = 2/latent_shards = 1/' kr1x1.toml
mpirun_np 4 "$BIN/saepipe-train" --job kr1x4.toml >kr1x4.log 2>&1 || { fail "2x2 state resumed on 1x4"; cat kr1x4.log; }
mpirun_np 1 "$BIN/saepipe-train" --job kr1x1.toml >kr1x1.log 2>&1 || { fail "2x2 state resumed unsharded"; cat kr1x1.log; }
grep -q "resuming kr1x4/sae at step" kr1x4.log && grep -q "resuming kr1x1/sae at step" kr1x1.log &&
  pass "2x2 state resumed on 1x4 and 1x1 ($(grep -o 'at step [0-9]*' kr1x4.log))" || fail "did not resume on other grids"
$PY - <<'P' && pass "2x2 state resumed on 1x4 and unsharded: weights within 1e-5 relative of the uninterrupted 2x2 run" || fail "resharded resume differs"
import h5py, numpy as np, sys
ref = h5py.File("kfull/sae/sae.h5")
ok = True
for run in ("kr1x4", "kr1x1"):
    f = h5py.File(f"{run}/sae/sae.h5")
    worst = max(np.abs(ref[k][...] - f[k][...]).max() / max(np.abs(ref[k][...]).max(), 1e-30)
                for k in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold"))
    print(run, "max relative difference", worst)
    ok &= bool(worst <= 1e-5)
sys.exit(0 if ok else 1)
P
job e_ranks.toml erun 4; job e_big.toml erun 128 64; job e_div.toml erun 3 64; job e_align.toml erun 2 256
expect_error 2 "latent_shards = 4: does not divide the 2 ranks" -- mpirun_np 2 "$BIN/saepipe-train" --job e_ranks.toml
expect_error 2 "resources.train.latent_shards: = 128 is more than train.d_sae = 64" -- mpirun_np 2 "$BIN/saepipe-train" --job e_big.toml
expect_error 2 "resources.train.latent_shards: = 3 does not divide train.d_sae = 64" -- mpirun_np 3 "$BIN/saepipe-train" --job e_div.toml
expect_error 2 "latent_shards = 2: train: d_sae = 256 must be a multiple of latent_shards x 256 = 512" -- mpirun_np 2 "$BIN/saepipe-train" --job e_align.toml
finish
