#!/bin/sh
# Slurm TaskProlog: runs as the user before every task; each "export NAME=VALUE" line it prints
# lands in the task's environment. Gives qsched clients the allocation's id, account and TRUE end
# time (Slurm 22.05 sets no SLURM_JOB_END_TIME; the job's EndTime moves when a limit is changed).
# Needs only squeue. Never fails the task: anything it cannot learn it leaves unset, and the
# client asks squeue itself (producers/slurm.py).
[ -n "$SLURM_JOB_ID" ] || exit 0
line=$(SLURM_TIME_FORMAT=%s timeout 10 squeue -h -j "$SLURM_JOB_ID" -o '%e|%a' 2>/dev/null | head -n 1)
end=${line%%|*}
account=${line#*|}
echo "export QSCHED_SLURM_ALLOCATION=$SLURM_JOB_ID"
case "$end" in
    ''|*[!0-9]*) ;;  # "Unknown" (no time limit) or squeue unreachable
    *) echo "export SLURM_JOB_END_TIME=$end" ;;
esac
case "$SLURM_JOB_ACCOUNT" in "(null)") SLURM_JOB_ACCOUNT= ;; esac
case "$account" in "(null)") account= ;; esac
if [ -z "$SLURM_JOB_ACCOUNT" ] && [ -n "$account" ] && [ "$account" != "$line" ]; then
    echo "export SLURM_JOB_ACCOUNT=$account"
fi
exit 0
