"""A job on the wire: the request, how it failed or ended, its progress, place and receipt."""

from __future__ import annotations

import functools
import json
from typing import Any, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.enums import ErrorCode, JobState
from schemas.reports import QueueEntry
from schemas.wire import (
    ID_PATTERN,
    JOB_CLASS_PATTERN,
    MAX_ID_LENGTH,
    MAX_PRIORITY,
    Message,
    new_id,
    utc_now,
)


class JobError(BaseModel):
    """A structured failure: what a submitter can act on instead of a bare "ERROR".

    Attributes:
        code: machine-readable reason.
        message: one human sentence.
        retryable: whether submitting the same job again may succeed.
        field: the offending input field, when one is to blame.
        details: the values that decided it (limits, atoms, channels...).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: ErrorCode
    message: str
    retryable: bool = False
    field: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class SlurmContext(BaseModel):
    """Where in the HPC centre a job says it comes from, from the submitter's environment.

    Only a hint: the owner takes a job's allocation, account and allocation end from its
    allocation registry (`schemas.context`), and logs ``job.context_mismatch`` when they differ.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str
    rank: int | None = Field(default=None, ge=0)
    account: str | None = None
    allocation_end: AwareDatetime | None = None


class JobRequest(Message):
    """A quantum job: one Pulser sequence and a number of shots."""

    schema_name: ClassVar[str] = "qsched.JobRequest"

    job_id: str = Field(default_factory=new_id, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)
    job_class: str = Field(min_length=1, max_length=64, pattern=JOB_CLASS_PATTERN)
    priority: int = Field(default=0, ge=0, le=MAX_PRIORITY)
    shots: int = Field(gt=0)
    sequence: str = Field(
        description='Pulser abstract-repr JSON of the sequence ("" for a job of a batch, '
        "which runs its batch's sequence built with `variables`)"
    )
    batch_id: str | None = None
    variables: dict[str, Any] | None = Field(
        default=None, description="a batch job's values of its batch's declared variables"
    )
    session_id: str | None = None
    slurm: SlurmContext | None = None
    submitted_at: AwareDatetime = Field(default_factory=utc_now)
    deadline: AwareDatetime | None = None
    max_runtime_s: float | None = Field(default=None, gt=0)
    min_epoch: int | None = Field(default=None, ge=0)
    allow_device_switch: bool = Field(
        default=False,
        description="run a sequence built for another device on the owner's device",
    )
    require_qpu: bool = Field(
        default=False, description="run on the QPU only, never on an emulator lane"
    )
    position_updates: bool = Field(
        default=False,
        description="the owner pushes a JobPosition to reply_to when the job's place changes",
    )
    receipt: bool = Field(
        default=False,
        description="the owner sends a JobReceipt to reply_to once the job is accepted",
    )
    opens_session: bool = Field(
        default=True,
        description="a session_id the owner does not know opens a session (False: refused)",
    )

    @field_validator("sequence")
    @classmethod
    def _sequence_is_json_object(cls, value: str) -> str:
        problem = _json_object_problem(value) if value else None
        if problem is not None:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _sequence_or_batch(self) -> JobRequest:
        if not self.sequence and self.batch_id is None:
            raise ValueError(
                "sequence: a job needs a sequence, or a batch_id whose sequence it runs"
            )
        return self


@functools.lru_cache(maxsize=1024)
def _json_object_problem(value: str) -> str | None:
    """Why `value` is not a JSON object, or None (cached: sweeps resend the same sequences)."""
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        return f"not JSON: {exc}"
    if not isinstance(parsed, dict):
        return "must be a JSON object (Pulser abstract representation)"
    return None


class RunInterval(BaseModel):
    """One run of a job: when it ran, where, and how the run ended."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    started_at: AwareDatetime
    ended_at: AwareDatetime
    lane: str | None = Field(default=None, description="the emulator lane (None: the QPU)")
    backend: str | None = None
    attempt: int = Field(default=1, ge=1)
    outcome: str = Field(
        default="",
        description="how the run ended: preempted, requeued, retrying, recovered (its owner "
        "died), or the job's final state",
    )

    @property
    def seconds(self) -> float:
        """How long the run took."""
        return max((self.ended_at - self.started_at).total_seconds(), 0.0)


class Timings(BaseModel):
    """When a job waited and ran. Every run is in `runs`, so a preempted or retried job's
    figures count all of them: `queue_wait_s` is from `queued_at` (the owner accepting the job)
    to its *first* start, `execution_s` the seconds of all runs, `qpu_s` those on the QPU (what
    fair share charges; lane runs are not QPU time)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    queued_at: AwareDatetime = Field(description="when the owner accepted the job")
    submitted_at: AwareDatetime | None = Field(
        default=None, description="when the client says it submitted the job (its own clock)"
    )
    started_at: AwareDatetime | None = Field(default=None, description="the first run's start")
    ended_at: AwareDatetime
    queue_wait_s: float | None = Field(default=None, description="queued_at to the first start")
    execution_s: float | None = Field(default=None, description="seconds of all runs")
    qpu_s: float | None = Field(default=None, description="seconds of the runs on the QPU")
    runs: list[RunInterval] = Field(default_factory=list, description="every run, in order")


class JobResult(Message):
    """The final word on a job, sent to the submitter and kept in the event log."""

    schema_name: ClassVar[str] = "qsched.JobResult"

    job_id: str
    state: JobState
    job_class: str
    shots: int = Field(ge=0)
    counts: dict[str, int] = Field(default_factory=dict)
    error: JobError | None = None
    timings: Timings
    backend: str | None = None
    epoch: int | None = None
    attempts: int = Field(default=0, ge=0)
    preemptions: int = Field(default=0, ge=0)
    lane: str | None = Field(
        default=None, description="the emulator lane it ran on (None: the QPU, or it never ran)"
    )
    specs: str | None = Field(
        default=None, description="digest of the device specs it ran under (QPU or emulator lane)"
    )

    @model_validator(mode="after")
    def _final_and_consistent(self) -> JobResult:
        if not self.state.is_final:
            raise ValueError(f"a result must have a final state, not {self.state}")
        if self.state is JobState.DONE and self.error is not None:
            raise ValueError("a DONE result carries no error")
        if self.state is not JobState.DONE and self.error is None:
            raise ValueError(f"a {self.state} result must carry an error")
        return self


class JobProgress(Message):
    """A partial result streamed while a job runs."""

    schema_name: ClassVar[str] = "qsched.JobProgress"

    job_id: str
    shots: int = Field(gt=0)
    shots_done: int = Field(ge=0)
    counts: dict[str, int] = Field(default_factory=dict)


class JobPosition(Message):
    """Where a waiting job stands, pushed by the owner to a job submitted with
    `position_updates` whenever its place in line (or its hold) changes, and once when it starts
    (position 0, RUNNING). At most every `owner.position_every_s` per job, and rarer while the
    backlog is so large that ordering it costs the owner more than a few percent of its time."""

    schema_name: ClassVar[str] = "qsched.JobPosition"

    job_id: str
    entry: QueueEntry


class JobReceipt(Message):
    """The owner's word that a job submitted with `receipt` entered its backlog: its `number`
    (1, 2, 3... in acceptance order, the integer id the QRMI gateway shows) is known from here."""

    schema_name: ClassVar[str] = "qsched.JobReceipt"

    job_id: str
    number: int = Field(ge=1)
