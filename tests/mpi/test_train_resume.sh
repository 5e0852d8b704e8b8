#!/usr/bin/env bash
# Exact resume of training: two ranks, kill -9 one rank after a checkpoint (first a worker,
# then rank 0, the one that writes), re-run the same command each time: the final weights
# are bit-identical to an uninterrupted run with the same rank count. Matryoshka: batchtopk's
# selection and threshold state with the nested-prefix loss on top; a gated sweep entry beside it
# (its r_mag and b_mag in train_state.h5 and sae.h5; a sparsity target, whose adapting factor
# resumes from train_state.h5). Then the same for a batchtopk skip
# transcoder (two hooks of the store, a target batch, W_skip). OpenBLAS rounds
# differently with its thread count, so every run uses one thread.
source "$(dirname "$(dirname "$0")")/e2e/lib.sh" "$1"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
job() {  # job FILE RUN_DIR
  cat > "$1" <<T
[run]
name = "resume"
dir = "$2"
seed = 5
[harvest]
hooks = ["blocks.0.hook_resid_post", "blocks.1.hook_mlp_out"]
n_tokens = 65536
context = 64
shard_tokens = 16384
[harvest.synthetic]
d_model = 64
n_features = 256
mean_active = 5.0
hook_noise = 0.01
[train]
activations = "store/activations"
architecture = "matryoshka"
matryoshka_prefixes = [128, 512]
d_sae = 2048
k = 8
batch_tokens = 2048
n_tokens = 327680
lr = 0.002
lr_warmup_steps = 10
grad_clip = 1.0
auxk = 64
dead_tokens = 8192
checkpoint_every = 20
resample_every = 30
log_every = 10
[[train.sweep]]
name = "gated"
architecture = "gated"
d_sae = 512
l1_coef = 0.3
target_l0 = 8
T
}
job store.toml store; job full.toml full; job part.toml part
mpirun_np 2 "$BIN/saepipe-harvest" --job store.toml >harvest.log 2>&1 || fail "harvest"
mpirun_np 2 "$BIN/saepipe-train" --job full.toml >full.log 2>&1 || { fail "uninterrupted run"; cat full.log; }

PART=part  # the run being interrupted
state_step() { checkpoint_step "$PART/sae/train_state.h5"; }
# interrupt RANK MIN_STEP: start the run, wait for a checkpoint at >= MIN_STEP, kill -9 RANK.
interrupt() {
  mpirun_np 2 "$BIN/saepipe-train" --job $PART.toml >"$PART-kill$1.log" 2>&1 &
  local launcher=$!
  wait_for_checkpoint $launcher "$PART/sae/train_state.h5" "$2"
  local victim; victim=$(rank_pid $launcher "$1")
  if [ -n "$victim" ]; then kill -9 "$victim"; else fail "rank $1 not found (finished already?)"; fi
  wait $launcher && fail "run with rank $1 killed exited 0" || pass "rank $1 killed by SIGKILL at checkpoint step >= $2"
}
interrupt 1 20
[ ! -e part/sae/sae.h5 ] && pass "no sae.h5 after the kill" || fail "sae.h5 exists after the kill"
first=$(state_step)
interrupt 0 $((first + 20))
mpirun_np 2 "$BIN/saepipe-train" --job part.toml >resume.log 2>&1 || { fail "resumed run"; cat resume.log; }
grep -q "resuming part/sae at step" resume.log && pass "resumed ($(grep -o 'at step [0-9]*' resume.log))" || { fail "did not resume"; cat resume.log; }
$PY - <<'P' && pass "weights bit-identical to the uninterrupted run" || fail "resumed weights differ"
import h5py, numpy as np, sys
ok = True
for sub, extra in (("", ()), ("/sweep/gated", ("r_mag", "b_mag"))):
    a, b = h5py.File(f"full/sae{sub}/sae.h5"), h5py.File(f"part/sae{sub}/sae.h5")
    for k in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold") + extra:
        same = np.array_equal(a[k][...], b[k][...])
        print(sub or "main", k, "identical" if same else f"differs by {np.abs(a[k][...] - b[k][...]).max():.3g}")
        ok &= same
    la = [l for l in open(f"full/sae{sub}/train_log.jsonl")]
    lb = [l for l in open(f"part/sae{sub}/train_log.jsonl")]
    print(sub or "main", "log records", len(la), len(lb))
    ok &= len(la) == len(lb)
sys.exit(0 if ok else 1)
P
# A transcoder with the skip: the same kills and resume.
tjob() {  # tjob FILE RUN_DIR
  cat > "$1" <<T
[run]
name = "resume_tc"
dir = "$2"
seed = 5
[train]
activations = "store/activations"
hook = "blocks.0.hook_resid_post"
target_hook = "blocks.1.hook_mlp_out"
skip = true
architecture = "batchtopk"
d_sae = 512
k = 8
batch_tokens = 2048
n_tokens = 163840
lr = 0.002
auxk = 64
dead_tokens = 8192
checkpoint_every = 20
log_every = 10
T
}
tjob tfull.toml tfull; tjob tpart.toml tpart
mpirun_np 2 "$BIN/saepipe-train" --job tfull.toml >tfull.log 2>&1 || { fail "uninterrupted transcoder run"; cat tfull.log; }
PART=tpart
interrupt 1 20
first=$(state_step)
interrupt 0 $((first + 20))
mpirun_np 2 "$BIN/saepipe-train" --job tpart.toml >tresume.log 2>&1 || { fail "resumed transcoder run"; cat tresume.log; }
grep -q "resuming tpart/sae at step" tresume.log && pass "transcoder resumed ($(grep -o 'at step [0-9]*' tresume.log))" || { fail "transcoder did not resume"; cat tresume.log; }
$PY - <<'P' && pass "transcoder weights (W_skip too) bit-identical to the uninterrupted run" || fail "resumed transcoder weights differ"
import h5py, numpy as np, sys
a, b = h5py.File("tfull/sae/sae.h5"), h5py.File("tpart/sae/sae.h5")
ok = True
for k in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold", "W_skip"):
    same = np.array_equal(a[k][...], b[k][...])
    print("transcoder", k, "identical" if same else f"differs by {np.abs(a[k][...] - b[k][...]).max():.3g}")
    ok &= same
sys.exit(0 if ok else 1)
P
finish
