#!/usr/bin/env bash
# Install what the Slurm tests and a single-node Slurm need (Debian/Ubuntu), only when missing.
# Called by `make slurm-deps` and by .ci/run; safe to run again (does nothing when installed).
set -euo pipefail
need=()
command -v slurmctld >/dev/null 2>&1 || need+=(slurmctld)
command -v slurmd >/dev/null 2>&1 || need+=(slurmd)
command -v sbatch >/dev/null 2>&1 || need+=(slurm-client)
command -v munged >/dev/null 2>&1 || need+=(munge)
if [ ${#need[@]} -eq 0 ]; then
    echo "slurm-deps: slurmctld, slurmd, slurm-client and munge are installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "slurm-deps: missing ${need[*]}; run as root: apt-get install -y --no-install-recommends ${need[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${need[@]}"
