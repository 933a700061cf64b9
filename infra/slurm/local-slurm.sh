#!/usr/bin/env bash
# A single-node Slurm + MUNGE in a directory of its own, for tests and demos (root, no systemd,
# no cgroups). Installs the Debian packages when missing (deps.sh).
#
#   local-slurm.sh start DIR [--epilog-env FILE] [--qsched BIN]   start munged, slurmctld, slurmd
#   local-slurm.sh stop DIR                                        stop them (pid files)
#
# After start, DIR/env holds what users need: `. DIR/env` exports SLURM_CONF and MUNGE_SOCKET.
# The node runs infra/slurm/prolog.sh as Prolog, infra/slurm/task-prolog.sh as TaskProlog and
# infra/slurm/epilog.sh as Epilog (prolog and epilog through DIR/prolog-wrapper.sh and
# DIR/epilog-wrapper.sh, which point them at --epilog-env, --qsched and this Slurm).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:?usage: local-slurm.sh start|stop DIR}
dir=${2:?usage: local-slurm.sh start|stop DIR}
shift 2

stop_pid() {  # stop the daemon whose pid file is $1, waiting up to 10 s
    [ -f "$1" ] || return 0
    local pid
    pid=$(cat "$1")
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
}

if [ "$cmd" = stop ]; then
    stop_pid "$dir/slurmd.pid"
    stop_pid "$dir/slurmctld.pid"
    stop_pid "$dir/munged.pid"
    exit 0
fi
[ "$cmd" = start ] || { echo "unknown command $cmd" >&2; exit 2; }

epilog_env=/etc/qsched/epilog.env
qsched_bin=$(command -v qsched || echo qsched)
while [ $# -gt 0 ]; do
    case "$1" in
        --epilog-env) epilog_env=$2; shift 2 ;;
        --qsched) qsched_bin=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

"$here/deps.sh" >/dev/null
mkdir -p "$dir"/{sock,state,spool,log}
dir=$(cd "$dir" && pwd)
chmod 755 "$dir" "$dir/sock"   # munged refuses a socket directory others cannot reach
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
node=$(hostname -s)

[ -f "$dir/munge.key" ] || mungekey -c -k "$dir/munge.key"
munged --socket="$dir/sock/munge.socket" --key-file="$dir/munge.key" --pid-file="$dir/munged.pid" \
    --log-file="$dir/log/munged.log" --seed-file="$dir/munged.seed"

cat > "$dir/epilog-wrapper.sh" <<WRAP
#!/bin/sh
QSCHED_EPILOG_ENV=$epilog_env QSCHED_BIN=$qsched_bin QSCHED_EPILOG_LOG=$dir/log/epilog.log \\
    exec $here/epilog.sh
WRAP
chmod 755 "$dir/epilog-wrapper.sh"
cat > "$dir/prolog-wrapper.sh" <<WRAP
#!/bin/sh
SLURM_CONF=$dir/slurm.conf QSCHED_EPILOG_ENV=$epilog_env QSCHED_BIN=$qsched_bin \\
    QSCHED_PROLOG_LOG=$dir/log/prolog.log exec $here/prolog.sh
WRAP
chmod 755 "$dir/prolog-wrapper.sh"

cat > "$dir/slurm.conf" <<CONF
ClusterName=qsched-local
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/sock/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=batch_sched_delay=0
MailProg=/bin/true
ReturnToService=2
KillWait=2
InactiveLimit=0
OverTimeLimit=0
MinJobAge=300
PrologFlags=Alloc
Prolog=$dir/prolog-wrapper.sh
TaskProlog=$here/task-prolog.sh
Epilog=$dir/epilog-wrapper.sh
NodeName=$node NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
chmod 644 "$dir/slurm.conf"

slurmctld -f "$dir/slurm.conf"
slurmd -f "$dir/slurm.conf"
cat > "$dir/env" <<ENV
export SLURM_CONF=$dir/slurm.conf
export MUNGE_SOCKET=$dir/sock/munge.socket
ENV
for _ in $(seq 1 300); do
    state=$(SLURM_CONF="$dir/slurm.conf" sinfo -h -n "$node" -o %t 2>/dev/null || true)
    case "$state" in idle*|mix*|alloc*) echo "slurm: node $node $state; . $dir/env"; exit 0 ;; esac
    sleep 0.1
done
echo "slurm: node $node did not become idle (state: ${state:-none}); logs in $dir/log" >&2
exit 1
