#!/usr/bin/env bash
# The activation store's data path next to the machine's bound, in one run. For d_model 768 and
# 2304, bfloat16 and float32, 1 and 2 ranks:
#   write  bench_io write (write_shard on a worker pool, as harvest) vs dd of the same bytes (run
#          twice: the second, into page-cache pages the first freed, is the bound; and
#          dd of them into /dev/shm, page cache with no file system under it);
#   read   train's shuffled stream (float32 batches, and batches in the store's dtype) and stats'
#          sequential reads, from a warm page cache and a cold one, vs cat of the same files.
# Then the train stage on the d 768 bf16 store at d_sae 64, k 4 (data-bound) and d_sae 24576,
# k 32 (compute-bound), next to the shuffled read alone (the data bound); with --baseline DIR,
# DIR/saepipe-train (an earlier build) on the same store in the same run.
# Cold cache: every shard is written back (fdatasync) and dropped from the page cache with
# posix_fadvise(POSIX_FADV_DONTNEED) (bench_io evict; only these files, no root needed); the
# share still resident (mincore) is printed. Every figure is per rank. The bounds run as many
# processes at once as there are ranks: dd writes each rank's share of the bytes; cat reads the
# whole store, as each rank's shuffled stream does (stats' sequential reads take only a share).
# --repeat N measures every row (bounds included) N times in turn, the train rows alternating
# with the baseline's; the tables give the median with the range (this VM's rows move by 2x
# between runs). Writes OUT/io_bench.jsonl (every repetition) and prints markdown tables.
#   bash bench/bench_io.sh [--build build] [--out DIR] [--gb 2] [--dims "768 2304"]
#        [--dtypes "bfloat16 float32"] [--ranks "1 2"] [--no-cold] [--no-train] [--baseline DIR]
#        [--train-dsae "64 24576"] [--repeat 1]
set -euo pipefail
BUILD=build OUT=/tmp/saepipe_bench_io GB=2 DIMS="768 2304" DTYPES="bfloat16 float32" RANKS="1 2" COLD=1 TRAIN=1 BASELINE="" TRAIN_DSAE="64 24576" REPEAT=1
while (($#)); do
  case "$1" in
    --build) BUILD=$2; shift 2 ;; --out) OUT=$2; shift 2 ;; --gb) GB=$2; shift 2 ;; --dims) DIMS=$2; shift 2 ;;
    --dtypes) DTYPES=$2; shift 2 ;; --ranks) RANKS=$2; shift 2 ;; --no-cold) COLD=0; shift ;;
    --no-train) TRAIN=0; shift ;; --baseline) BASELINE=$(realpath "$2"); shift 2 ;;
    --train-dsae) TRAIN_DSAE=$2; shift 2 ;; --repeat) REPEAT=$2; shift 2 ;;
    *) echo "bench_io.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
BUILD=$(realpath "$BUILD")
IO="$BUILD/bench/bench_io"
[ -x "$IO" ] || { echo "bench_io.sh: $IO missing (bash scripts/build.sh)" >&2; exit 2; }
# `build.sh bench_io` does not rebuild the stage programs: a train row from an older saepipe-train
# than the sources would be a figure of other code.
if ((TRAIN)); then
  [ -x "$BUILD/saepipe-train" ] || { echo "bench_io.sh: $BUILD/saepipe-train missing (bash scripts/build.sh)" >&2; exit 2; }
  newer=$(find pipeline kernels -newer "$BUILD/saepipe-train" \( -name '*.cpp' -o -name '*.hpp' \) -print -quit)
  [ -z "$newer" ] || { echo "bench_io.sh: $BUILD/saepipe-train is older than $newer (bash scripts/build.sh)" >&2; exit 2; }
fi
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
RES="$OUT/io_bench.jsonl"
: > "$RES"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
CORES=$(nproc)
mpi() { local np=$1; shift; OMP_NUM_THREADS=$(( CORES / np > 0 ? CORES / np : 1 )) mpirun -q --bind-to none --oversubscribe -np "$np" "$@"; }
now() { date +%s.%N; }
rate() { python3 -c "import sys; print(f'{$1 / max($2, 1e-9) / 1e9:.4f}')"; }  # bytes seconds -> GB/s
record() { echo "$1" >> "$RES"; }

# P processes at once, each running "$@" with its index substituted for {}: the seconds of all.
parallel_time() {
  local p=$1; shift
  local t0 pids=() i
  t0=$(now)
  for ((i = 0; i < p; i++)); do bash -c "${*//\{\}/$i}" & pids+=($!); done
  wait "${pids[@]}"
  python3 -c "print($(now) - $t0)"
}

echo "bench_io: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start; $(uname -r)" | tee "$OUT/machine.txt"
for D in $DIMS; do
  for DT in $DTYPES; do
    ES=$([ "$DT" = float32 ] && echo 4 || echo 2)
    ROW=$(( D * ES ))
    SHARD=$(( (268435456 / ROW + 1023) / 1024 * 1024 ))                                   # ~256 MiB shards
    N=$(python3 -c "print(max(1, round($GB * 1e9 / $ROW / $SHARD)) * $SHARD)")              # whole shards
    BYTES=$(( N * ROW ))
    STORE="$OUT/store_${D}_${DT}"
    for R in $RANKS; do
      for ((rep = 1; rep <= REPEAT; rep++)); do
        tag="\"d_model\": $D, \"dtype\": \"$DT\", \"ranks\": $R, \"tokens\": $N, \"rep\": $rep"
        # Write: dd of each rank's share, then the store writer; dirty pages written back between.
        # dd twice: on this VM a page-cache page that is fresh to the guest costs a host fault (dd
        # 0.44 GB/s after drop_caches), one freed by an earlier rm does not (1.4-2.0 GB/s); the
        # writer runs right after rm's too, so the second dd is its bound, the first is shown.
        sync
        dd_cmd="dd if=/dev/zero of=$OUT/dd.{} bs=4M count=$(( BYTES / R / 4194304 + 1 )) status=none"
        dd_fresh_s=$(parallel_time "$R" "$dd_cmd")
        rm -f "$OUT"/dd.*; sync
        dd_s=$(parallel_time "$R" "$dd_cmd")
        rm -f "$OUT"/dd.*; sync
        # The same bytes into tmpfs (/dev/shm: page cache with no disk under it), shown beside.
        shm_s=$(parallel_time "$R" "dd if=/dev/zero of=/dev/shm/saepipe_bench_dd.{} bs=4M count=$(( BYTES / R / 4194304 + 1 )) status=none")
        rm -f /dev/shm/saepipe_bench_dd.*
        rm -rf "$STORE"; mkdir -p "$STORE"
        w=$(mpi "$R" "$IO" write "$STORE" "$D" "$DT" "$N" "$SHARD")
        sync
        record "{$tag, \"what\": \"write\", \"dd_gb_s_per_rank\": $(rate $((BYTES / R)) "$dd_s"), \"dd_first_gb_s_per_rank\": $(rate $((BYTES / R)) "$dd_fresh_s"), \"dd_shm_gb_s_per_rank\": $(rate $((BYTES / R)) "$shm_s"), \"result\": $w}"
        # Warm reads: the store was just written; cat once to be sure, then the cat bound.
        cat "$STORE"/shard-*.h5 > /dev/null
        cat_s=$(parallel_time "$R" "cat $STORE/shard-*.h5 > /dev/null")
        cat_gb=$(rate "$BYTES" "$cat_s")
        for mode in "shuffled $STORE 4096 262144" "shuffled $STORE 4096 262144 store" "sequential $STORE 4096"; do
          r=$(mpi "$R" "$IO" $mode)
          record "{$tag, \"what\": \"read_warm\", \"cat_gb_s_per_rank\": $cat_gb, \"result\": $r}"
        done
        if [ "$COLD" = 1 ] && [ "$R" = 1 ]; then
          "$IO" evict "$STORE"/shard-*.h5
          cold_res=$("$IO" resident "$STORE"/shard-*.h5)
          t0=$(now); cat "$STORE"/shard-*.h5 > /dev/null; cat_cold=$(rate "$BYTES" "$(python3 -c "print($(now) - $t0)")")
          for mode in "sequential $STORE 4096" "shuffled $STORE 4096 262144 store"; do
            "$IO" evict "$STORE"/shard-*.h5
            r=$(mpi 1 "$IO" $mode)
            record "{$tag, \"what\": \"read_cold\", \"resident_after_evict\": $cold_res, \"cat_gb_s_per_rank\": $cat_cold, \"result\": $r}"
          done
        fi
      done
    done
    # Train on the d 768 bf16 store: data-bound and compute-bound.
    if [ "$TRAIN" = 1 ] && [ "$D" = 768 ] && [ "$DT" = bfloat16 ]; then
      for R in $RANKS; do
        for F in $TRAIN_DSAE; do
          K=$( ((F >= 1024)) && echo 32 || echo 4 ); TT=$( ((F >= 1024)) && echo $(( 4096 * 6 )) || echo "$N" )
          for ((rep = 1; rep <= REPEAT; rep++)); do
            for which in new baseline; do
              [ "$which" = baseline ] && [ -z "$BASELINE" ] && continue
              bin=$([ "$which" = baseline ] && echo "$BASELINE/saepipe-train" || echo "$BUILD/saepipe-train")
              dir="$OUT/train_${F}_${R}_$which"; rm -rf "$dir"
              printf '[run]\nname = "io"\ndir = "%s"\n[train]\nactivations = "%s"\nd_sae = %s\nk = %s\nbatch_tokens = 4096\nn_tokens = %s\nheldout_fraction = 0.0\ncheckpoint_every = 0\nlog_every = %s\n' \
                "$dir" "$STORE" "$F" "$K" "$TT" $(( F > 1000 ? 1 : 16 )) > "$OUT/train.toml"
              mpi "$R" "$bin" --job "$OUT/train.toml" > "$OUT/train_${F}_${R}_$which.log" 2>&1
              # tokens/s of the logged windows after the first (which holds start-up)
              tps=$(python3 -c "
import json, statistics
recs = [json.loads(l) for l in open('$dir/sae/train_log.jsonl')]
print(statistics.median(r['tokens_per_s'] for r in (recs[1:] or recs)))")
              record "{\"d_model\": $D, \"dtype\": \"$DT\", \"ranks\": $R, \"what\": \"train\", \"binary\": \"$which\", \"d_sae\": $F, \"k\": $K, \"rep\": $rep, \"tokens_per_s\": $tps}"
            done
          done
        done
      done
    fi
    rm -rf "$STORE"
  done
done
echo "bench_io: load average $(cut -d' ' -f1-3 /proc/loadavg) at the end" | tee -a "$OUT/machine.txt"

# (the load lines above, also in OUT/machine.txt, went to stdout through tee)
python3 - "$RES" <<'P'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
med = statistics.median


def fig(values, digits):  # the median, and the range when repeated
    m = f"{med(values):.{digits}f}"
    return m if len(values) == 1 else f"{m} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def groups(rs, key):  # rows by key, in first-seen order
    out = {}
    for r in rs:
        out.setdefault(key(r), []).append(r)
    return out


def op(r):
    return r["what"] if r["what"] == "write" else r["what"] + " " + r["result"]["op"]


reps = max(r.get("rep", 1) for r in rows)
print("\nStore writer and reader, per rank (GB/s of activations in the store's dtype; share of the same-run bound)"
      + (f"; median of {reps} runs (range)" if reps > 1 else ""))
print("| d_model | dtype | ranks | what | GB/s | tokens/s | bound | bound GB/s | share |")
print("|---:|---|---:|---|---:|---:|---|---:|---:|")
io = [r for r in rows if r["what"] != "train"]
for (d, dt, ranks, what), g in groups(io, lambda r: (r["d_model"], r["dtype"], r["ranks"], op(r))).items():
    gb = [r["result"]["loaded_gb_s_per_rank"] for r in g]
    tps = [r["result"]["tokens_per_s_per_rank"] for r in g]
    write = g[0]["what"] == "write"
    bound = "dd" if write else "cat"
    bgb = [r["dd_gb_s_per_rank"] if write else r["cat_gb_s_per_rank"] for r in g]
    share = [a / max(b, 1e-9) for a, b in zip(gb, bgb)]
    if write:
        what += (f" (dd to /dev/shm {med([r['dd_shm_gb_s_per_rank'] for r in g]):.2f};"
                 f" first dd {med([r['dd_first_gb_s_per_rank'] for r in g]):.2f})")
    if g[0]["what"] == "read_cold":
        what += f" (resident after evict {max(r['resident_after_evict'] for r in g):.0%})"
    print(f"| {d} | {dt} | {ranks} | {what} | {fig(gb, 2)} | {med(tps):.0f} | {bound} | {fig(bgb, 2)} | {med(share):.0%} |")
train = [r for r in rows if r["what"] == "train"]
if train:
    print("\nTrain stage on the d 768 bf16 store (tokens/s, all ranks; median of the logged windows after the first"
          + (f"; median of {reps} runs (range)" if reps > 1 else "") + ")")
    print("| ranks | d_sae | k | binary | tokens/s | shuffled read alone, tokens/s (all ranks) |")
    print("|---:|---:|---:|---|---:|---:|")
    for (ranks, d_sae, k, binary), g in groups(train, lambda r: (r["ranks"], r["d_sae"], r["k"], r["binary"])).items():
        read = [x["result"]["tokens_per_s_per_rank"] * ranks for x in io
                if x["d_model"] == 768 and x["dtype"] == "bfloat16" and x["ranks"] == ranks
                and x["what"] == "read_warm" and x["result"]["op"] == "shuffled_float32"]
        bound = f"{med(read):.0f}" if read else "-"
        print(f"| {ranks} | {d_sae} | {k} | {binary} | {fig([r['tokens_per_s'] for r in g], 0)} | {bound} |")
P
