#!/usr/bin/env bash
# run.device: "auto" where not every rank sees a GPU runs on the CPU and records it (the log,
# job.resolved.toml, the outputs' fingerprints); "cuda" with no GPU visible (CUDA_VISIBLE_DEVICES
# empty) ends every stage program with exit 2 and one line naming run.device and why, under 1
# and 3 ranks, before anything is written.
source "$(dirname "$0")/lib.sh" "$1"
job() {  # job NAME DEVICE
  cat <<T
[run]
name = "$1"
device = "$2"
[harvest]
n_tokens = 4096
context = 64
shard_tokens = 2048
[harvest.synthetic]
d_model = 16
n_features = 32
[train]
d_sae = 32
k = 4
batch_tokens = 256
n_tokens = 2048
init_tokens = 512
[stats]
batch_tokens = 256
T
}
job dev auto > auto.toml
job devcuda cuda > cuda.toml
export CUDA_VISIBLE_DEVICES=

for stage in harvest train stats interpret; do
  if mpirun_np 2 "$BIN/saepipe-$stage" --job auto.toml > $stage.log 2>&1; then pass "$stage on auto"; else fail "$stage on auto: $(tail -5 $stage.log)"; fi
  grep -q 'run.device = "auto": cpu' $stage.log && pass "$stage logs the device" || fail "$stage log: $(head -3 $stage.log)"
done
grep -q "^device = 'cpu'" runs/dev/job.resolved.toml && pass "resolved job records cpu" || fail "resolved job: $(grep device runs/dev/job.resolved.toml)"
$PY - <<'P' && pass "fingerprints name the device" || fail "fingerprints"
import json, h5py
m = json.load(open("runs/dev/activations/manifest.json"))
assert m["source"]["fingerprint"].endswith("device = cpu\n"), m["source"]["fingerprint"]
s = json.load(open("runs/dev/stats/summary.json"))
assert "\ndevice = cpu\n" in s["fingerprint"], s["fingerprint"]
with h5py.File("runs/dev/sae/sae.h5") as f:
    fp = f.attrs["fingerprint"]
    fp = fp.decode() if isinstance(fp, bytes) else fp
    assert "\ndevice = cpu\n" in fp, fp
P

for np in 1 3; do
  for stage in harvest train stats interpret; do
    expect_error 2 "cuda.toml: run.device = \"cuda\": " -- mpirun_np $np "$BIN/saepipe-$stage" --job cuda.toml
  done
done
[ ! -e runs/devcuda ] && pass "nothing written for the refused job" || fail "runs/devcuda exists"
finish
