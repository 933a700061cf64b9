"""Pydantic models of every message on the wire (DESIGN section 3).

Each model names its schema and version in class variables; the codec puts them in the AMQP
``type`` property as ``<schema>/<version>``. Bump the version when a change is not backward
compatible, and keep decoding the old one for as long as queues may still hold it.
"""

from __future__ import annotations

import functools
import json
import random
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from schemas.budgets import BudgetStatus as BudgetStatus  # part of ControlReply
from schemas.details import BatchDetail as BatchDetail  # part of ControlReply
from schemas.details import JobDetail as JobDetail  # part of ControlReply
from schemas.details import StandbyOwner as StandbyOwner  # part of StatusReport
from schemas.enums import CommandName, ErrorCode, JobState, Mode, QPUState
from schemas.reports import QueueEntry as QueueEntry  # part of ControlReply and JobPosition
from schemas.reports import RunningJob as RunningJob  # part of StatusReport
from schemas.reports import SessionSummary as SessionSummary  # part of ControlReply
from schemas.reports import StatusReport as StatusReport  # part of ControlReply
from schemas.reports import UsageReport as UsageReport  # part of ControlReply
from schemas.reservations import Reservation as Reservation  # part of ControlCommand/Reply

MAX_PRIORITY = 9
# Job and command ids travel as AMQP message and correlation ids (short strings: at most 255
# bytes), so a client-chosen id is held to plain ASCII of a bounded length.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
MAX_ID_LENGTH = 128
# A class name is part of its queue's name: lower-case ASCII, as policies write it.
JOB_CLASS_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
# The fewest first characters of a job id that may name it (the owner resolves prefixes; the
# CLI refuses shorter ones as a usage error before asking).
MIN_JOB_PREFIX = 4


IdSource = Callable[[], str]  # where the owner's core takes event ids from (`new_id`, seeded)


def new_id() -> str:
    """A fresh UUID4 as text, the form of every job, command and event id."""
    return str(uuid.uuid4())


def seeded_ids(seed: int) -> IdSource:
    """Ids of the form of `new_id` drawn from `seed`: a simulation's ids, the same every run."""
    rng = random.Random(seed)
    return lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4))


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC (only shells call this; the core takes `now`)."""
    return datetime.now(UTC)


class Message(BaseModel):
    """Base of all wire models: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_name: ClassVar[str] = ""
    schema_version: ClassVar[int] = 1

    @classmethod
    def type_name(cls) -> str:
        """The AMQP ``type`` property for this model, e.g. ``qsched.JobRequest/1``."""
        return f"{cls.schema_name}/{cls.schema_version}"


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


JOB_COMMANDS = frozenset(
    {
        CommandName.CANCEL,
        CommandName.PREEMPT,
        CommandName.SHOW,
        CommandName.HOLD,
        CommandName.RELEASE,
        CommandName.UPDATE,
        CommandName.REQUEUE,
        CommandName.RESULT,
        CommandName.HISTORY,
    }
)  # commands about one job: they need its id
SESSION_COMMANDS = frozenset({CommandName.SESSION_CLOSE, CommandName.SESSION_CANCEL})
BUDGET_CHANGES = frozenset({CommandName.BUDGET_SET, CommandName.BUDGET_TOP_UP})
RESERVATION_CHANGES = frozenset({CommandName.RESERVATION_CREATE, CommandName.RESERVATION_UPDATE})
BATCH_COMMANDS = frozenset(
    {
        CommandName.BATCH_SHOW,
        CommandName.BATCH_CLOSE,
        CommandName.BATCH_CANCEL,
        CommandName.BATCH_RETRY,
        CommandName.BATCH_RESULTS,
    }
)  # commands about one batch: they need its id


class ControlCommand(Message):
    """An operator's command to the owner, routed as ``control.<command>``."""

    schema_name: ClassVar[str] = "qsched.ControlCommand"

    command_id: str = Field(default_factory=new_id, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)
    command: CommandName
    job_id: str | None = None
    mode: Mode | None = None
    message: str | None = Field(default=None, max_length=2000)
    force: bool = Field(default=False, description="calibration-start: preempt the running job")
    user: str | None = Field(
        default=None,
        description="queue: only this user's jobs; allocation-started: the allocation's user",
    )
    job_class: str | None = Field(
        default=None, description="queue: only this class; update: the job's new class"
    )
    priority: int | None = Field(
        default=None, ge=0, le=MAX_PRIORITY, description="update: the job's new priority"
    )
    limit: int | None = Field(default=None, ge=1, description="queue: at most this many entries")
    specs: str | None = Field(default=None, description="calibration-complete: Pulser device JSON")
    allocation: str | None = Field(
        default=None, max_length=128, description="allocation-started/-ended: Slurm job id"
    )
    account: str | None = Field(
        default=None, max_length=256, description="allocation-started: its Slurm account"
    )
    end: AwareDatetime | None = Field(
        default=None, description="allocation-started: when Slurm ends it (None: no limit)"
    )
    uid: int | None = Field(default=None, ge=0, description="allocation-started: the user's uid")
    partition: str | None = Field(
        default=None, max_length=256, description="allocation-started: its Slurm partition"
    )
    wait: bool = Field(
        default=False, description="result: also send the result to reply_to when the job ends"
    )
    message_id: str | None = Field(
        default=None, max_length=200, description="dead-requeue: the dead letter's message id"
    )
    number: int | None = Field(
        default=None, ge=1, description="a job command: the job by its number instead of its id"
    )
    session_id: str | None = Field(
        default=None,
        max_length=MAX_ID_LENGTH,
        pattern=ID_PATTERN,
        description="session-open (None: the command id)/-close/-cancel: the session",
    )
    max_time_s: float | None = Field(
        default=None, gt=0, description="session-open: its length (the policy's default and cap)"
    )
    idle_timeout_s: float | None = Field(
        default=None, gt=0, description="session-open: it ends after this long without a job"
    )
    batch_id: str | None = Field(
        default=None, max_length=MAX_ID_LENGTH, description="batch-*: the batch"
    )
    since: AwareDatetime | None = Field(default=None, description="usage: from this time")
    until: AwareDatetime | None = Field(default=None, description="usage: up to this time")
    by: Literal["account", "user", "class", "day", "allocation"] | None = Field(
        default=None, description="usage: one row per account, user, class, day or allocation"
    )
    seconds: float | None = Field(
        default=None, gt=0, description="budget-set: QPU seconds per period; budget-top-up: more"
    )
    period: Literal["day", "week", "month"] | None = Field(
        default=None, description="budget-set: the budget's period (default month)"
    )
    reservation: Reservation | None = Field(
        default=None, description="reservation-create/-update: the reservation as asked"
    )
    mine: bool = Field(
        default=False, description="budget-show: only the budgets the sender's jobs spend"
    )
    name: str | None = Field(
        default=None, max_length=64, description="reservation-delete/-list: the reservation"
    )
    issued_at: AwareDatetime = Field(default_factory=utc_now)

    @model_validator(mode="after")
    def _arguments_present(self) -> ControlCommand:
        if self.command is CommandName.MODE and self.mode is None:
            raise ValueError("command 'mode' needs a mode")
        if self.command in JOB_COMMANDS and not self.job_id and self.number is None:
            raise ValueError(f"command {self.command.value!r} needs a job_id or a number")
        if self.command in BATCH_COMMANDS and not self.batch_id:
            raise ValueError(f"command {self.command.value!r} needs a batch_id")
        if self.command is CommandName.DEAD_REQUEUE and not self.message_id:
            raise ValueError("command 'dead-requeue' needs the dead letter's message_id")
        if self.command is CommandName.UPDATE and self.priority is None and not self.job_class:
            raise ValueError("command 'update' needs a priority or a job_class")
        if self.command in RESERVATION_CHANGES and self.reservation is None:
            raise ValueError(f"command {self.command.value!r} needs a reservation")
        if self.command is CommandName.RESERVATION_DELETE and not self.name:
            raise ValueError("command 'reservation-delete' needs the reservation's name")
        if self.command in BUDGET_CHANGES and not (self.account and self.seconds):
            raise ValueError(f"command {self.command.value!r} needs an account and seconds")
        if self.command in SESSION_COMMANDS and not self.session_id:
            raise ValueError(f"command {self.command.value!r} needs a session_id")
        if self.command is CommandName.ALLOCATION_ENDED and not self.allocation:
            raise ValueError("command 'allocation-ended' needs an allocation (Slurm job id)")
        if self.command is CommandName.ALLOCATION_STARTED and not (self.allocation and self.user):
            raise ValueError(
                "command 'allocation-started' needs an allocation (Slurm job id) and its user"
            )
        return self


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


class JobSummary(BaseModel):
    """One job of a `jobs` reply: its ids and where it is (no sequence, no counts)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str
    number: int | None = None
    state: JobState
    session_id: str | None = None
    submitted_at: AwareDatetime | None = None


class ControlReply(Message):
    """The owner's answer to one control command (correlation_id = command_id)."""

    schema_name: ClassVar[str] = "qsched.ControlReply"

    command_id: str
    command: CommandName
    job_id: str | None = Field(
        default=None, description="the job the command is about, its id prefix resolved"
    )
    ok: bool
    message: str = ""
    error: JobError | None = None
    status: StatusReport | None = None
    queue: list[QueueEntry] | None = None
    result: JobResult | None = Field(default=None, description="result: the job's final result")
    history: list[Event] | None = Field(
        default=None, description="history: the job's events in log order (no progress events)"
    )
    ignored: dict[str, str] | None = Field(
        default=None,
        description="history: the events of the job the owner's state ignored (event id -> why)",
    )
    session: SessionSummary | None = Field(
        default=None, description="history: the session the job was in, as the owner knows it"
    )
    job: JobDetail | None = None
    jobs: list[JobSummary] | None = Field(
        default=None, description="jobs: the sender's jobs, newest first"
    )
    number: int | None = Field(default=None, description="a job command: the job's number")
    batch: BatchDetail | None = None
    usage: UsageReport | None = Field(default=None, description="usage: the ledger's rows")
    reservations: list[Reservation] | None = Field(
        default=None, description="reservation-*: the reservations (current and to come)"
    )
    budgets: list[BudgetStatus] | None = Field(
        default=None, description="budget-*: the budgets that apply (a submitter: their own)"
    )
    results: list[JobResult] | None = Field(
        default=None, description="batch-results: the final results of the batch's ended jobs"
    )


class Event(Message):
    """One state change; published on ``<ns>.events`` with routing key `topic`.

    `topic` reads ``job.<state>``, ``qpu.<state>``, ``owner.<what>``, ``calibration.<what>`` or
    ``control.<command>``. Final job events carry the whole result, so a redelivered job can be
    answered from the log without running it again.
    """

    schema_name: ClassVar[str] = "qsched.Event"

    event_id: str = Field(default_factory=new_id)
    topic: str = Field(pattern=r"^[a-z]+\.[a-z0-9_.-]+$")
    at: AwareDatetime = Field(default_factory=utc_now)
    owner_id: str | None = None
    term: int | None = Field(default=None, ge=0, description="activation term of the writer")
    job_id: str | None = None
    job_class: str | None = None
    user: str | None = None
    reason: str | None = None
    qpu_state: QPUState | None = None
    result: JobResult | None = None
    progress: JobProgress | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    # The payload model `data` was dumped from (`schemas.events.make_event`), or parsed into on
    # first read (`schemas.events.payload_of`); memory only, never on the wire.
    _payload: Any = PrivateAttr(default=None)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy; the payload model comes along unless `update` replaces the data or topic."""
        copied = super().model_copy(update=update, deep=deep)
        if update and ("data" in update or "topic" in update):
            copied._payload = None
        return copied


ControlReply.model_rebuild()  # its `history` names Event, defined after it


class DeviceSpecs(Message):
    """The device the owner validates against now; kept as the last value in ``<ns>.device``."""

    schema_name: ClassVar[str] = "qsched.DeviceSpecs"

    device: str = Field(description="Pulser device abstract-repr JSON")
    epoch: int = Field(default=0, ge=0)
    backend: str
    published_at: AwareDatetime = Field(default_factory=utc_now)


class SnapshotPointer(Message):
    """Where the owner's last snapshot is in the log (the last value of ``<ns>.snapshot``)."""

    schema_name: ClassVar[str] = "qsched.SnapshotPointer"

    offset: int = Field(ge=0)
    event_id: str
    term: int = Field(ge=0)


class OwnerHeartbeat(Message):
    """A standby owner's "I am here", sent every few seconds on the control exchange as
    ``owner.standby`` (only the active owner's roster queue is bound to it)."""

    schema_name: ClassVar[str] = "qsched.OwnerHeartbeat"

    owner_id: str = Field(max_length=200)
    host: str = Field(max_length=255)
    pid: int | None = Field(default=None, ge=0)
    backend: str | None = Field(default=None, max_length=100)
    sent_at: AwareDatetime = Field(default_factory=utc_now)


ALL_MESSAGES: tuple[type[Message], ...] = (
    JobRequest,
    JobResult,
    JobProgress,
    JobPosition,
    JobReceipt,
    ControlCommand,
    ControlReply,
    Event,
    DeviceSpecs,
    SnapshotPointer,
    OwnerHeartbeat,
)
