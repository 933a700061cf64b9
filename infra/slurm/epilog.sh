#!/bin/sh
# Slurm Epilog: runs as SlurmUser on the node when an allocation ends (completed, canceled,
# timed out). Tells qsched, which cancels the allocation's queued QPU jobs, stops its running one
# and refuses any it sends later. It must never block or fail the Slurm job: the call has a hard
# timeout, everything is logged, and the script always exits 0.
#
# Settings (site-specific, root-only readable): QSCHED_EPILOG_ENV (default /etc/qsched/epilog.env)
# holding e.g.  QSCHED_AMQP_URL=amqp://slurm-epilog:PASSWORD@qpu-broker:5672/qsched
#               QSCHED_NAMESPACE=qpu
# (the `slurm-epilog` account may send allocation-ended and nothing else: `qsched broker users
# add slurm-epilog --role epilog`), or QSCHED_AUTH=munge when the broker runs `qsched auth serve`
# and SlurmUser is listed in the policy's `epilog_users`.
# QSCHED_BIN (default: qsched on PATH), QSCHED_EPILOG_TIMEOUT_S (default 10),
# QSCHED_EPILOG_LOG (default: syslog via logger, else stderr).
env_file=${QSCHED_EPILOG_ENV:-/etc/qsched/epilog.env}
if [ -r "$env_file" ]; then
    set -a
    . "$env_file"
    set +a
fi
qsched=${QSCHED_BIN:-qsched}
limit=${QSCHED_EPILOG_TIMEOUT_S:-10}

log() {
    if [ -n "$QSCHED_EPILOG_LOG" ]; then
        echo "$(date -u +%FT%TZ) qsched-epilog[$$] $*" >> "$QSCHED_EPILOG_LOG" 2>/dev/null
    elif command -v logger >/dev/null 2>&1; then
        logger -t qsched-epilog -- "$*" 2>/dev/null
    else
        echo "qsched-epilog: $*" >&2
    fi
}

[ -n "$SLURM_JOB_ID" ] || { log "no SLURM_JOB_ID; nothing to do"; exit 0; }
# qsched-epilog (installed next to qsched) sends the same command without the CLI's imports,
# so the running QPU job stops sooner after scancel; the full CLI is the fallback.
fast=$(dirname "$(command -v "$qsched" 2>/dev/null || echo "$qsched")")/qsched-epilog
if [ -x "$fast" ]; then
    out=$(timeout -k 2 "$limit" "$fast" "$SLURM_JOB_ID" 2>&1)
else
    out=$(timeout -k 2 "$limit" "$qsched" ctl allocation-ended "$SLURM_JOB_ID" 2>&1)
fi
rc=$?
if [ $rc -eq 0 ]; then
    log "allocation $SLURM_JOB_ID ended: $out"
else
    log "allocation $SLURM_JOB_ID: qsched not told (exit $rc, broker unreachable or slow?): $out"
fi
exit 0
