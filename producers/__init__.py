"""The qsched client SDK: submit Pulser sequences to the shared QPU and collect their results.

::

    from producers import QPUClient, as_completed

    with QPUClient() as client:  # QSCHED_AMQP_URL and QSCHED_NAMESPACE, like the CLI
        handles = {client.submit(seq, 100) for seq in sweep}  # class development by default
        for handle in as_completed(handles, timeout=600):
            print(handle.job_id, handle.result().counts)

`QSchedConnection` (the Pulser ``RemoteConnection``) is imported on first use, since it loads
Pulser; everything else here is light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from producers.batches import BatchHandle
from producers.client import QPUClient
from producers.errors import (
    BrokerRefused,
    BrokerUnreachable,
    ClientError,
    CommandRefused,
    InvalidJob,
    NoOwnerAnswered,
    NotAuthorised,
    NotDeclared,
    QschedError,
    QueueFull,
    ResultTimeout,
    UnknownJobClass,
)
from producers.futures import (
    ALL_COMPLETED,
    FIRST_COMPLETED,
    FIRST_EXCEPTION,
    DoneAndNotDone,
    as_completed,
    wait,
)
from producers.handle import JobHandle, PositionCallback, ProgressCallback
from producers.mpi import JobSpec, MPISubmitter
from schemas.batches import BatchDetail, BatchJob, BatchRequest
from schemas.enums import JobState
from schemas.jobs import JobProgress, JobRequest, JobResult
from schemas.reports import QueueEntry

if TYPE_CHECKING:
    from producers.pulser import QSchedConnection

__all__ = [
    "ALL_COMPLETED",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "BatchDetail",
    "BatchHandle",
    "BatchJob",
    "BatchRequest",
    "BrokerRefused",
    "BrokerUnreachable",
    "ClientError",
    "CommandRefused",
    "DoneAndNotDone",
    "InvalidJob",
    "JobHandle",
    "JobProgress",
    "JobRequest",
    "JobResult",
    "JobSpec",
    "JobState",
    "MPISubmitter",
    "NoOwnerAnswered",
    "NotAuthorised",
    "NotDeclared",
    "PositionCallback",
    "ProgressCallback",
    "QPUClient",
    "QSchedConnection",
    "QschedError",
    "QueueEntry",
    "QueueFull",
    "ResultTimeout",
    "UnknownJobClass",
    "as_completed",
    "wait",
]


def __getattr__(name: str) -> Any:
    if name == "QSchedConnection":  # loads Pulser: only when asked for
        from producers.pulser import QSchedConnection

        return QSchedConnection
    raise AttributeError(f"module 'producers' has no attribute {name!r}")
