#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for tests and for trying `saepipe submit`.
#   scripts/local_slurm.sh start DIR   # prints "export SLURM_CONF=DIR/slurm.conf"
#   scripts/local_slurm.sh stop DIR
# Needs root and Debian's slurm-wlm + munge (scripts/setup.sh installs them).
set -euo pipefail
cmd=${1:?start|stop}; D=$(mkdir -p "${2:?directory}" && cd "$2" && pwd)
case "$cmd" in
start)
  if ! pgrep -x munged >/dev/null; then
    [ -s /etc/munge/munge.key ] || mungekey -c -f -k /etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    munged --force
  fi
  H=$(hostname -s)
  port=$((20000 + RANDOM % 20000))
  mkdir -p "$D/state" "$D/spool" "$D/log"
  cat > "$D/slurm.conf" <<CONF
ClusterName=saepipe
SlurmctldHost=$H
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
SlurmctldPort=$port
SlurmdPort=$((port + 1))
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
MinJobAge=600
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
NodeName=$H CPUs=$(nproc --all) RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
  export SLURM_CONF="$D/slurm.conf"
  slurmctld -f "$SLURM_CONF"
  slurmd -f "$SLURM_CONF"
  for _ in $(seq 60); do
    sinfo -h -o %t 2>/dev/null | grep -qE "idle|mix" && { echo "export SLURM_CONF=$SLURM_CONF"; exit 0; }
    sleep 1
  done
  echo "local_slurm: the node did not come up; see $D/log" >&2; exit 1 ;;
stop)
  for p in slurmd slurmctld; do [ -f "$D/$p.pid" ] && kill "$(cat "$D/$p.pid")" 2>/dev/null || true; done ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
