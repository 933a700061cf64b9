"""The Slurm allocation a submitter runs in, read from its environment (and from Slurm itself).

Slurm 22.05 does not put the allocation's end time in a job's environment. The TaskProlog of
`infra/slurm/` exports it as ``SLURM_JOB_END_TIME``, with ``QSCHED_SLURM_ALLOCATION`` naming the
job it belongs to (an end inherited from another allocation is ignored); when no prolog did, `slurm_context` asks
Slurm (``SLURM_TIME_FORMAT=%s squeue -h -j JOB -o "%e|%a"``) once per process. The rank is the
MPI launcher's (``PMI_RANK`` for MPICH, ``OMPI_COMM_WORLD_RANK`` for Open MPI), else
``SLURM_PROCID`` (srun without MPI).
"""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from schemas.jobs import SlurmContext

# An MPI launcher started inside a batch step inherits its SLURM_PROCID (0): the launcher's
# own rank comes first.
RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID")
SQUEUE_TIMEOUT_S = 5.0
Squeue = Callable[[str], tuple[str | None, str | None]]


@functools.cache
def squeue_end_and_account(job_id: str) -> tuple[str | None, str | None]:
    """The allocation's end (epoch seconds, as text) and account, from squeue; Nones when
    squeue is missing, fails or knows no end (no time limit)."""
    env = dict(os.environ) | {"SLURM_TIME_FORMAT": "%s"}
    try:
        done = subprocess.run(
            ["squeue", "-h", "-j", job_id, "-o", "%e|%a"],
            capture_output=True,
            text=True,
            env=env,
            timeout=SQUEUE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None, None
    line = (
        done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else ""
    )
    end, _, account = line.partition("|")
    return (end if end.isdigit() else None), (None if account in ("", "(null)") else account)


def slurm_context(
    environ: Mapping[str, str] | None = None, squeue: Squeue = squeue_end_and_account
) -> SlurmContext | None:
    """The Slurm allocation this process runs in (None outside Slurm).

    Args:
        environ: the environment (this process's by default).
        squeue: asks Slurm for (end, account) when the environment lacks them.
    """
    env = os.environ if environ is None else environ
    job_id = env.get("SLURM_JOB_ID")
    if not job_id:
        return None
    end = env.get("SLURM_JOB_END_TIME")
    prolog_job = env.get("QSCHED_SLURM_ALLOCATION")
    if prolog_job and prolog_job != job_id:  # the TaskProlog's end belongs to an outer allocation
        end = None
    account = env.get("SLURM_JOB_ACCOUNT")
    account = None if account in (None, "", "(null)") else account
    if not (end and end.isdigit()) or not account:
        asked_end, asked_account = squeue(job_id)
        end = end if end and end.isdigit() else asked_end
        account = account or asked_account
    rank = next((env[v] for v in RANK_VARIABLES if env.get(v, "").isdigit()), None)
    return SlurmContext(
        job_id=job_id,
        rank=int(rank) if rank is not None else None,
        account=account,
        allocation_end=datetime.fromtimestamp(int(end), UTC) if end and end.isdigit() else None,
    )
