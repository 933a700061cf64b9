"""Event payloads of a job's life: the data of the ``job.*`` topics (and ``batch.rejected``,
a refusal like ``job.rejected``). The topics that carry each are `schemas.events.PAYLOADS`.
"""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.context import VerifiedContext
from schemas.enums import JobState
from schemas.jobs import JobError, JobRequest, SlurmContext
from schemas.payloads import Payload


class JobAccepted(Payload):
    """A job entered the owner's backlog: the whole request plus what the owner learned of it."""

    job: JobRequest
    user: str
    reply_to: str | None = None
    trace: dict[str, str] = Field(default_factory=dict)
    site_term: float | None = Field(
        default=None, description="the ordering plugin's term, computed once at acceptance"
    )
    attempt: int | None = Field(
        default=None, ge=1, description="job.resubmitted: the attempt its next run is"
    )
    number: int | None = Field(
        default=None, ge=1, description="the job's number: 1, 2, 3... in acceptance order"
    )
    verified: VerifiedContext | None = Field(
        default=None,
        description="allocation, account and end as the owner verified them (None: an event"
        " written before the owner verified contexts; its `job.slurm` is then used as it was)",
    )


class ContextMismatch(Payload):
    """What a job's client said about its Slurm context differs from what the owner verified
    (the verified context is what counts; this records the claim)."""

    claimed: dict[str, Any]
    verified: VerifiedContext
    fields: tuple[str, ...] = Field(description="the claimed fields that differ")


class Refused(Payload):
    """A job refused at intake; for a message that is no job of its sender (garbage, a reused
    id) the event names no job, only the message id and queue it came with."""

    code: str | None = None
    message_id: str | None = None
    queue: str | None = None
    batch_id: str | None = None


class JobFacts(BaseModel):
    """What the owner's state keeps of an accepted job: its request without the sequence."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    job_id: str
    job_class: str
    priority: int = 0
    shots: int
    submitted_at: AwareDatetime
    session_id: str | None = None
    batch_id: str | None = None
    slurm: SlurmContext | None = None
    min_epoch: int | None = None
    deadline: AwareDatetime | None = None
    max_runtime_s: float | None = None
    require_qpu: bool = False
    position_updates: bool = False
    variables: dict[str, Any] | None = None


class AcceptedFacts(Payload):
    """`JobAccepted` read without its sequence (what `apply` needs; no sequence parsing)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    job: JobFacts
    user: str
    reply_to: str | None = None
    trace: dict[str, str] = Field(default_factory=dict)
    site_term: float | None = None
    attempt: int | None = None
    number: int | None = None
    verified: VerifiedContext | None = None


class JobStarted(Payload):
    """A run began on the QPU."""

    attempt: int = Field(ge=1)
    epoch: int = Field(ge=0)
    backend: str
    shots: int = Field(ge=0, description="shots this run takes (the job's remaining shots)")
    lane: str | None = Field(default=None, description="the emulator lane (None: the QPU)")
    specs: str | None = Field(default=None, description="digest of the device specs it runs under")
    in_grace: bool = Field(
        default=False,
        description="the job's session was in its grace window: the session's turn goes on",
    )


class JobProgress(Payload):
    """Counts measured so far by the running job (including earlier runs)."""

    shots_done: int = Field(ge=0)
    counts: dict[str, int] = Field(default_factory=dict)


class JobStopping(Payload):
    """The owner asked the backend to stop the running job, and why it will end."""

    error: JobError
    state: JobState


class JobPreempting(Payload):
    """The running job is being stopped for a better one."""

    challenger: str | None = None


class JobBack(Payload):
    """A run was cut short and the job waits again with the shots measured so far."""

    counts: dict[str, int] = Field(default_factory=dict)
    shots_done: int = Field(default=0, ge=0)
    shots: int = Field(default=0, ge=0, description="the job's shots in all")
    execution_s: float = Field(default=0.0, ge=0)
    preempted: bool = False


class JobRetrying(JobBack):
    """A run failed with a retryable error and the job's retry budget allows another run: the
    job waits again (with the shots measured so far) and may not start before `retry_at`."""

    error: JobError
    retry_at: AwareDatetime
    failures: int = Field(ge=1, description="runs of the job that failed retryably so far")


class JobHeld(Payload):
    """A waiting job is held until released: by its submitter (a user hold) or an operator."""

    by: str
    operator: bool = False


class JobReleased(Payload):
    """A held job may start again."""

    by: str


class JobUpdated(Payload):
    """A waiting job's priority or class changed (None: unchanged)."""

    by: str
    priority: int | None = Field(default=None, ge=0, le=9)
    job_class: str | None = None


class JobRequeuing(Payload):
    """The running job is being stopped to run again from its first shot (its counts dropped)."""

    by: str


class AdmissionHold(Payload):
    """An admission plugin holds a waiting job (`hold` says why), or lets it go (`hold` None)."""

    hold: str | None = None
