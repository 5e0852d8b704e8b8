#!/usr/bin/env bash
# A SLURM cluster of NODES nodes (default 2: n1, n2) on this machine, for tests and for trying
# `saepipe submit`: one slurmctld and one slurmd per node name (`slurmd -N`), each with its
# own port, spool and temporary directory (so that srun's PMIx directories of the nodes do not
# collide). Every node offers all of this machine's CPUs, shared (OverSubscribe).
#   scripts/local_slurm.sh start DIR [NODES]   # prints "export SLURM_CONF=DIR/slurm.conf"
#   scripts/local_slurm.sh stop DIR
# Needs root and Debian's slurm-wlm + munge (scripts/setup.sh installs them).
# Requeued jobs wait cred_expire seconds before they start again (SLURM's default is 120).
set -euo pipefail
cmd=${1:?start|stop}; D=$(mkdir -p "${2:?directory}" && cd "$2" && pwd)
case "$cmd" in
start)
  nodes=${3:-2}
  if ! pgrep -x munged >/dev/null; then
    [ -s /etc/munge/munge.key ] || mungekey -c -f -k /etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    munged --force
  fi
  H=$(hostname -s)
  port=$((20000 + RANDOM % 20000))
  mkdir -p "$D/state" "$D/log"
  cat > "$D/slurm.conf" <<CONF
ClusterName=saepipe
SlurmctldHost=$H
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool-%n
TmpFS=$D/tmp-%n
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd-%n.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd-%n.log
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
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
  for i in $(seq "$nodes"); do
    echo "NodeName=n$i NodeHostname=$H NodeAddr=127.0.0.1 Port=$((port + 1 + i)) CPUs=$(nproc --all) RealMemory=1000 State=UNKNOWN" >> "$D/slurm.conf"
    mkdir -p "$D/spool-n$i" "$D/tmp-n$i"
  done
  export SLURM_CONF="$D/slurm.conf"
  slurmctld -f "$SLURM_CONF"
  for i in $(seq "$nodes"); do slurmd -f "$SLURM_CONF" -N "n$i"; done
  for _ in $(seq 60); do
    [ "$(sinfo -h -N -o %t 2>/dev/null | grep -cE 'idle|mix')" = "$nodes" ] && { echo "export SLURM_CONF=$SLURM_CONF"; exit 0; }
    sleep 1
  done
  echo "local_slurm: the nodes did not come up; see $D/log" >&2; exit 1 ;;
stop)
  for f in "$D"/slurmd-*.pid "$D"/slurmctld.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done ;;
*) echo "usage: $0 start|stop DIR [NODES]" >&2; exit 2 ;;
esac
