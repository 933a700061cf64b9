"""Batches on the wire: one sequence, validated once, and many jobs that carry only their runs
(shots) and variables, as Pulser means a batch (`RemoteConnection.submit(job_params=...)`).

A `BatchRequest` either creates a batch (with its sequence, possibly parametrized, and its first
jobs) or adds jobs to an open one (``sequence`` None). It travels like a job, to the class's
queue, so the owner takes it in the same intake, and is accepted or refused whole: an invalid
sequence, a job whose variables the sequence does not declare (or lacks), a closed batch, or
more jobs than the backlog limits allow refuse every job of the message, naming why.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from schemas.details import BatchDetail as BatchDetail  # what the owner tells of one
from schemas.jobs import SlurmContext, _json_object_problem
from schemas.wire import (
    ID_PATTERN,
    JOB_CLASS_PATTERN,
    MAX_ID_LENGTH,
    MAX_PRIORITY,
    Message,
    new_id,
    utc_now,
)

MAX_BATCH_JOBS = 100_000
BATCH_AMQP_PRIORITY = MAX_PRIORITY  # ahead of everything in its queue: a batch before its jobs


class BatchJob(BaseModel):
    """One job of a batch: Pulser's ``JobParams`` (``runs``, ``variables``) and its id."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str = Field(default_factory=new_id, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)
    shots: int = Field(gt=0)
    variables: dict[str, Any] = Field(default_factory=dict)


class BatchRequest(Message):
    """Create a batch (`sequence` given) or add jobs to an open one (`sequence` None)."""

    schema_name: ClassVar[str] = "qsched.BatchRequest"

    batch_id: str = Field(default_factory=new_id, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)
    job_class: str = Field(min_length=1, max_length=64, pattern=JOB_CLASS_PATTERN)
    priority: int = Field(default=0, ge=0, le=MAX_PRIORITY)
    sequence: str | None = Field(
        default=None, description="Pulser abstract-repr JSON (None: add to the open batch)"
    )
    jobs: list[BatchJob] = Field(default_factory=list, max_length=MAX_BATCH_JOBS)
    open: bool = Field(default=False, description="more jobs may be added until it is closed")
    session_id: str | None = None
    slurm: SlurmContext | None = None
    submitted_at: AwareDatetime = Field(default_factory=utc_now)
    deadline: AwareDatetime | None = None
    max_runtime_s: float | None = Field(default=None, gt=0)
    min_epoch: int | None = Field(default=None, ge=0)
    allow_device_switch: bool = False
    require_qpu: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> BatchRequest:
        if self.sequence is not None:
            problem = _json_object_problem(self.sequence)
            if problem is not None:
                raise ValueError(f"sequence: {problem}")
        elif not self.jobs:
            raise ValueError("adding to a batch needs at least one job")
        ids = [job.job_id for job in self.jobs]
        if len(set(ids)) != len(ids):
            raise ValueError("job ids repeat within the batch")
        return self
