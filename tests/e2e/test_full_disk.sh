#!/usr/bin/env bash
# A full disk (a small tmpfs as the run directory): each stage stops with a clean one-line
# error and nothing incomplete carries a final name (no manifest, every final-named shard
# complete, no sae.h5, no summary.json).
source "$(dirname "$0")/lib.sh" "$1"
if [ "$(id -u)" -ne 0 ]; then echo "skipped: mounting a tmpfs needs root"; exit 77; fi
mkdir -p tiny
mount -t tmpfs -o size=1m tmpfs tiny || { echo "skipped: cannot mount a tmpfs here"; exit 77; }
# Lazy: a rank still exiting must not leave the tmpfs mounted (seen once in a CI rehearsal).
trap 'umount -l "$WORK/tiny"' EXIT
cat > big.toml <<'T'
[run]
name = "disk"
dir = "tiny/run"
[harvest]
n_tokens = 65536
context = 64
shard_tokens = 4096
[harvest.synthetic]
d_model = 16
n_features = 32
mean_active = 2.0
T
# 1. A store that can't fit (5.2 MB of rows into 1 MiB): refused before anything is computed.
timeout 120 mpirun_np 2 "$BIN/saepipe-harvest" --job big.toml >early.log 2>&1
rc=$?
[ $rc -eq 1 ] && pass "harvest refuses a store larger than the free space (exit 1)" || { fail "early check exit $rc"; cat early.log; }
grep -qE '^saepipe-harvest: system error: tiny/run/activations: writing the activation store \(at least\) needs 5\.2 MB but its file system has (1\.0|0\.[0-9]) MB free' early.log \
  && pass "one line: $(grep -E '^saepipe-harvest: ' early.log)" || { fail "early check message"; cat early.log; }
[ -z "$(ls tiny/run/activations 2>/dev/null)" ] && pass "nothing written" || fail "files written: $(ls tiny/run/activations)"
rm -rf tiny/run

# 2. Room for the rows but not for HDF5's own structures (~0.36 MB here): the disk fills mid-write.
mount -o remount,size=5300k tiny
timeout 120 mpirun_np 2 "$BIN/saepipe-harvest" --job big.toml >harvest.log 2>&1
rc=$?
grep -q "writing 65536 tokens" harvest.log && pass "the early check let it start" || { fail "did not start"; cat harvest.log; }
# exit 1 (a system error), never a crash or a hang
[ $rc -eq 1 ] && pass "harvest on a full disk exits $rc" || fail "harvest exit $rc"
[ "$(grep -cE '^saepipe-harvest: ' harvest.log)" = 1 ] && pass "one error line: $(grep -E '^saepipe-harvest: ' harvest.log)" || { fail "error lines"; cat harvest.log; }
[ ! -e tiny/run/activations/manifest.json ] && pass "no manifest: the store is not presented as complete" || fail "manifest written"
$PY - <<'P' && pass "every final-named shard is complete and readable" || fail "an incomplete shard carries a final name"
import glob, h5py, sys
for p in glob.glob("tiny/run/activations/shard-*.h5"):
    with h5py.File(p, "r") as f:
        assert f.attrs["complete"] == 1, p
        f["activations/blocks.0.hook_resid_post"][...]
sys.exit(0)
P
"$BIN/saepipe" inspect tiny/run/activations >/dev/null 2>&1 && fail "inspect accepted an incomplete store" || pass "inspect refuses the incomplete store"
rm -rf tiny/run

# 3. No inode left for the shard (file creation fails with ENOSPC): a system error too, exit 1.
mount -o remount,size=8m,nr_inodes=5 tiny
timeout 120 mpirun_np 2 "$BIN/saepipe-harvest" --job big.toml >inodes.log 2>&1
rc=$?
[ $rc -eq 1 ] && grep -qE '^saepipe-harvest: system error: .*cannot create HDF5 file .*No space left on device' inodes.log \
  && pass "no inode left: exit 1, $(grep -E '^saepipe-harvest: ' inodes.log)" || { fail "no inode left: exit $rc"; cat inodes.log; }
rm -rf tiny/run
mount -o remount,size=1m,nr_inodes=1000 tiny

# Train and stats writing into a full disk, from a store elsewhere.
sed 's#dir = "tiny/run"#dir = "ok"#; s/n_tokens = 65536/n_tokens = 8192/' big.toml > small.toml
mpirun_np 2 "$BIN/saepipe-harvest" --job small.toml >/dev/null 2>&1 || fail "harvest elsewhere"
printf '[run]\nname = "disk"\ndir = "tiny/run2"\n[train]\nactivations = "ok/activations"\nd_sae = 64\nk = 2\nn_tokens = 4096\nbatch_tokens = 512\n' > train.toml
mkdir -p tiny/run2/sae
dd if=/dev/zero of=tiny/fill bs=4k 2>/dev/null   # fills the tmpfs
timeout 120 mpirun_np 2 "$BIN/saepipe-train" --job train.toml >train.log 2>&1
rc=$?
[ $rc -eq 1 ] && pass "train on a full disk exits $rc: $(grep -E '^saepipe-train: ' train.log | head -1)" || { fail "train exit $rc"; cat train.log; }
[ ! -e tiny/run2/sae/sae.h5 ] && pass "no sae.h5 left" || fail "sae.h5 written on a full disk"
[ -z "$(find tiny -name '*.tmp*')" ] && pass "no temporary files left" || fail "temporary files left: $(find tiny -name '*.tmp*')"

# Room to start but not for the first checkpoint (rank 0 writes it; the failure is agreed on by
# both ranks and told in one line, no MPI_Abort).
rm -rf tiny/fill tiny/run2 && mkdir -p tiny/run2/sae
dd if=/dev/zero of=tiny/fill bs=1k count=930 2>/dev/null
sed 's/d_sae = 64/d_sae = 256/; s/n_tokens = 4096/n_tokens = 40960/' train.toml > ckpt.toml && echo "checkpoint_every = 40" >> ckpt.toml
timeout 120 mpirun_np 2 "$BIN/saepipe-train" --job ckpt.toml >ckpt.log 2>&1
rc=$?
[ $rc -eq 1 ] && [ "$(grep -cE '^saepipe-train: ' ckpt.log)" = 1 ] && ! grep -q "MPI_ABORT" ckpt.log \
  && pass "checkpoint on a full disk: exit 1, $(grep -E '^saepipe-train: ' ckpt.log)" || { fail "checkpoint on a full disk: exit $rc"; cat ckpt.log; }
[ -z "$(find tiny -name '*.tmp*' -o -name 'train_state.h5' -o -name 'sae.h5')" ] && pass "no checkpoint or temporary file left" \
  || fail "left: $(find tiny -name '*.tmp*' -o -name 'train_state.h5' -o -name 'sae.h5')"

# The same with latent shards (1 x 2): both ranks write the checkpoint collectively (parallel
# HDF5); the rank that fails inside it cannot be agreed with (the other waits in a collective), so
# it prints one line naming itself and aborts the run: no hang, no checkpoint, no temporary left.
rm -rf tiny/run2 && mkdir -p tiny/run2/sae
sed 's/d_sae = 256/d_sae = 512/' ckpt.toml > sharded.toml && printf '[resources.train]\nlatent_shards = 2\n' >> sharded.toml
timeout 120 mpirun_np 2 "$BIN/saepipe-train" --job sharded.toml >sharded.log 2>&1
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -qE '^\[rank [01]@.*train_state.h5.tmp.*(No space left|write|close)' sharded.log \
  && pass "sharded checkpoint on a full disk: exit $rc, $(grep -m1 -E '^\[rank ' sharded.log | cut -c1-160)" \
  || { fail "sharded checkpoint on a full disk: exit $rc"; cat sharded.log; }
[ -z "$(find tiny -name '*.tmp*' -o -name 'train_state.h5' -o -name 'sae.h5')" ] && pass "sharded: no checkpoint or temporary file left" \
  || fail "sharded, left: $(find tiny -name '*.tmp*' -o -name 'train_state.h5' -o -name 'sae.h5')"
finish
