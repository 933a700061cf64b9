#!/bin/sh
# Slurm prolog: tells qsched an allocation started, whose it is, its account and its end, so the
# QPU owner's allocation registry (not the job's own claims) decides what a job naming the
# allocation may do. Install as PrologSlurmctld (runs once per job on the controller, as
# SlurmUser: the same least-privilege broker account as the epilog); as Prolog (once per node,
# as root) it works too: a second registration of the same allocation changes nothing.
#
# It must never block or fail the Slurm job (a failing prolog requeues the job or drains the
# node): the call has a hard timeout, everything is logged, and the script always exits 0. A job
# whose allocation was never registered waits the policy's `registration_grace_s`, then is
# refused naming the allocation.
#
# Sends: qsched ctl allocation-started ALLOC --user USER --account ACCOUNT --end EPOCH_SECONDS
# (plus --uid and --partition when Slurm gives them). Slurm gives the prolog SLURM_JOB_ID,
# SLURM_JOB_USER, SLURM_JOB_UID, SLURM_JOB_ACCOUNT, SLURM_JOB_PARTITION; the end time (start +
# time limit) comes from SLURM_JOB_END_TIME when the site's Slurm sets it, else from squeue
# (QSCHED_PROLOG_SQUEUE=0 skips that: the allocation is then registered without an end).
#
# Settings: as the epilog's (epilog.sh): QSCHED_EPILOG_ENV (default /etc/qsched/epilog.env) with
# QSCHED_AMQP_URL for the `slurm-epilog` account (`qsched broker users add slurm-epilog --role
# epilog`: allocation-started and allocation-ended only) and QSCHED_NAMESPACE, or QSCHED_AUTH=
# munge with SlurmUser in the policy's `epilog_users`. QSCHED_BIN (default: qsched on PATH),
# QSCHED_PROLOG_TIMEOUT_S (default 10), QSCHED_PROLOG_LOG (default: syslog via logger).
env_file=${QSCHED_EPILOG_ENV:-/etc/qsched/epilog.env}
if [ -r "$env_file" ]; then
    set -a
    . "$env_file"
    set +a
fi
qsched=${QSCHED_BIN:-qsched}
limit=${QSCHED_PROLOG_TIMEOUT_S:-10}

log() {
    if [ -n "$QSCHED_PROLOG_LOG" ]; then
        echo "$(date -u +%FT%TZ) qsched-prolog[$$] $*" >> "$QSCHED_PROLOG_LOG" 2>/dev/null
    elif command -v logger >/dev/null 2>&1; then
        logger -t qsched-prolog -- "$*" 2>/dev/null
    else
        echo "qsched-prolog: $*" >&2
    fi
}

job=$SLURM_JOB_ID
user=$SLURM_JOB_USER
[ -n "$job" ] || { log "no SLURM_JOB_ID; nothing to do"; exit 0; }
[ -n "$user" ] || { log "allocation $job: no SLURM_JOB_USER; not registered"; exit 0; }

account=$SLURM_JOB_ACCOUNT
case "$account" in "(null)") account= ;; esac
end=$SLURM_JOB_END_TIME
if [ -z "$end" ] && [ "${QSCHED_PROLOG_SQUEUE:-1}" != 0 ] && command -v squeue >/dev/null 2>&1; then
    end=$(SLURM_TIME_FORMAT=%s timeout 5 squeue -h -j "$job" -o '%e' 2>/dev/null | head -n 1)
fi
case "$end" in
    ''|*[!0-9]*) end= ;;  # "Unknown" (no time limit), or squeue unreachable: no end
esac

set -- ctl allocation-started "$job" --user "$user"
[ -n "$account" ] && set -- "$@" --account "$account"
[ -n "$end" ] && set -- "$@" --end "$end"
case "$SLURM_JOB_UID" in ''|*[!0-9]*) ;; *) set -- "$@" --uid "$SLURM_JOB_UID" ;; esac
[ -n "$SLURM_JOB_PARTITION" ] && set -- "$@" --partition "$SLURM_JOB_PARTITION"

out=$(timeout -k 2 "$limit" "$qsched" "$@" 2>&1)
rc=$?
if [ $rc -eq 0 ]; then
    log "allocation $job of $user registered (account ${account:-none}, end ${end:-none}): $out"
else
    log "allocation $job of $user: qsched not told (exit $rc, broker unreachable or slow?): $out"
fi
exit 0
