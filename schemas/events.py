"""Typed events: the topic enum and one payload model per topic.

Every state change of the owner is an `Event` (the envelope in `schemas.envelope`) whose `topic`
is a `Topic` (or, for an operator's command, ``control.<CommandName>``) and whose `data` is the
payload model of that topic, dumped to plain data so the log stays readable by any msgpack
reader. `make_event` builds one and refuses a payload of another type than its topic's; the
model it was built with stays on the event in memory, so `payload_of` returns it without parsing
the data again (an event decoded from the log is parsed once, on first read, raising
`ValueError` when the data does not fit the topic's model). Final job events also carry the
whole `JobResult` in the envelope's `result`, so a job's end can be read without the payload.

An event is built *unstamped* (no id, no time): whoever decides it stamps it (`stamp`). The
core's `step` stamps its events with the `now` and the id source the shell gives it, so one
seed replays one run; the owner's publisher stamps the few events the shell builds itself.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from schemas.budgets import Budget
from schemas.context import Allocation, VerifiedContext
from schemas.enums import CommandName, JobState, Mode
from schemas.envelope import Event
from schemas.jobs import JobError, JobRequest, SlurmContext
from schemas.messages import SnapshotPointer as SnapshotPointer  # belongs with snapshot events
from schemas.reservations import Reservation


class Topic(StrEnum):
    """Routing keys of the events exchange; the first word groups them."""

    OWNER_ACTIVATING = "owner.activating"
    OWNER_ACTIVATED = "owner.activated"
    OWNER_SNAPSHOT = "owner.snapshot"
    JOB_ACCEPTED = "job.accepted"
    BATCH_CREATED = "batch.created"
    BATCH_CLOSED = "batch.closed"
    BATCH_REJECTED = "batch.rejected"
    JOB_REJECTED = "job.rejected"
    JOB_STARTED = "job.started"
    JOB_PROGRESS = "job.progress"
    JOB_STOPPING = "job.stopping"
    JOB_PREEMPTING = "job.preempting"
    JOB_PREEMPTED = "job.preempted"
    JOB_REQUEUED = "job.requeued"
    JOB_RETRYING = "job.retrying"
    JOB_DONE = "job.done"
    JOB_ERROR = "job.error"
    JOB_CANCELED = "job.canceled"
    JOB_TIMED_OUT = "job.timed_out"
    JOB_DUPLICATE = "job.duplicate"
    JOB_NOTE = "job.note"
    JOB_REPLY_FAILED = "job.reply_failed"
    JOB_ADMISSION = "job.admission"
    JOB_CONTEXT_MISMATCH = "job.context_mismatch"
    PLUGIN_FAILED = "plugin.failed"
    JOB_HELD = "job.held"
    JOB_RELEASED = "job.released"
    JOB_UPDATED = "job.updated"
    JOB_REQUEUING = "job.requeuing"
    JOB_RESUBMITTED = "job.resubmitted"
    QPU_DOWN = "qpu.down"
    QPU_UP = "qpu.up"
    CALIBRATION_PENDING = "calibration.pending"
    CALIBRATION_STARTED = "calibration.started"
    CALIBRATION_COMPLETE = "calibration.complete"
    CALIBRATION_DUE = "calibration.due"
    SESSION_OPENED = "session.opened"
    SESSION_ENDED = "session.ended"
    CONTROL = "control"  # prefix only: control events read ``control.<command>`` (`CommandName`)


FINAL_TOPICS: dict[JobState, Topic] = {
    JobState.DONE: Topic.JOB_DONE,
    JobState.ERROR: Topic.JOB_ERROR,
    JobState.CANCELED: Topic.JOB_CANCELED,
    JobState.TIMED_OUT: Topic.JOB_TIMED_OUT,
    JobState.REJECTED: Topic.JOB_REJECTED,
}


class Payload(BaseModel):
    """Base of event payloads: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Empty(Payload):
    """No data."""


class OwnerActivated(Payload):
    """An owner took the lease; `term` is one higher than any before it."""

    term: int = Field(ge=1)
    backend: str
    policy: str | None = Field(
        default=None,
        description="the policy in force from this activation (TOML text; None: the defaults)",
    )


class OwnerActivating(Payload):
    """Marker an owner writes before it reads the log back (where its replay stops)."""

    nonce: str


class Snapshot(Payload):
    """The owner's state as plain data (see `consumers.core.snapshot`)."""

    state: dict[str, Any]
    offsets: dict[str, int] = Field(default_factory=dict)
    jobs: list[int | None] = Field(
        default_factory=list,
        description="offsets of each job's first and final events, in the order of state owners"
        " (consumers.joblog.JobOffsets.to_data)",
    )


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


class BatchCreated(Payload):
    """A batch entered the owner's state: its sequence, stored here once for all its jobs (read
    back by log offset like a job's), and what its jobs are checked against."""

    batch_id: str
    user: str
    job_class: str
    sequence: str
    digest: str
    variables: dict[str, tuple[str, int]] = Field(
        default_factory=dict, description="declared variables: name -> (type, size)"
    )
    open: bool = False
    session_id: str | None = None
    reply_to: str | None = None
    atom_order: list[str] = Field(default_factory=list)
    basis: str | None = None


class BatchFacts(BatchCreated):
    """`BatchCreated` read without its sequence (what `apply` needs)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    sequence: str = ""


class BatchClosed(Payload):
    """No more jobs may join the batch (declared complete, or canceled: `canceled`)."""

    batch_id: str
    by: str
    canceled: bool = False


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


class QPUStatus(Payload):
    """The backend went down or came back."""

    up: bool


class CalibrationComplete(Payload):
    """A new calibration epoch, with new device specs when given."""

    epoch: int = Field(ge=0)
    device: str | None = None


class CalibrationEpoch(Payload):
    """Calibration events that name the epoch they concern."""

    epoch: int = Field(ge=0)


class ControlApplied(Payload):
    """An operator's or submitter's command, as the owner answered it."""

    ok: bool
    command_id: str
    issued_at: AwareDatetime | None = None
    mode: Mode | None = None
    message: str | None = None
    allocation: str | None = None
    canceled: int = 0
    policy: str | None = Field(default=None, description="reload-policy: the TOML now in force")
    registered: Allocation | None = Field(
        default=None, description="allocation-started: the allocation as registered"
    )
    budget: Budget | None = Field(default=None, description="budget-set: the budget now in force")
    top_up: Budget | None = Field(
        default=None, description="budget-top-up: seconds added to the budget's current period"
    )
    period_start: AwareDatetime | None = Field(
        default=None, description="budget-top-up: the period the seconds are for"
    )
    reservation: Reservation | None = Field(
        default=None, description="reservation-create/-update: the reservation now in force"
    )
    deleted: str | None = Field(default=None, description="reservation-delete: its name")


class AdmissionHold(Payload):
    """An admission plugin holds a waiting job (`hold` says why), or lets it go (`hold` None)."""

    hold: str | None = None


class PluginFailed(Payload):
    """A site plugin raised, hung past its time limit, or gave an answer that is no answer."""

    point: str = Field(description="admission, ordering, event_sinks or backends")
    plugin: str
    error: str
    dropped: int = Field(default=0, ge=0, description="events a sink lost (buffer or retries)")


class SessionOpened(Payload):
    """A session began: explicitly (``session-open``: QRMI acquire, the SDK, Pulser's open
    batch) or implicitly, by the first job naming an unknown session id."""

    session_id: str
    user: str
    allocation: str | None = None
    account: str | None = None
    max_time_s: float = Field(gt=0)
    idle_timeout_s: float = Field(gt=0)
    exclusive_s: float | None = Field(
        default=None, ge=0, description="how long the QPU waits for its next job (None: never)"
    )
    job_class: str | None = Field(default=None, description="the class its exclusivity is of")
    explicit: bool = True


class SessionEnded(Payload):
    """A session ended: `reason` is closed, canceled, max_time, idle or allocation_ended."""

    session_id: str
    reason: str
    canceled: int = Field(default=0, ge=0, description="its waiting jobs canceled with it")


PAYLOADS: dict[Topic, type[Payload]] = {
    Topic.OWNER_ACTIVATING: OwnerActivating,
    Topic.OWNER_ACTIVATED: OwnerActivated,
    Topic.OWNER_SNAPSHOT: Snapshot,
    Topic.JOB_ACCEPTED: JobAccepted,
    Topic.JOB_RESUBMITTED: JobAccepted,
    Topic.JOB_REJECTED: Refused,
    Topic.BATCH_CREATED: BatchCreated,
    Topic.BATCH_CLOSED: BatchClosed,
    Topic.BATCH_REJECTED: Refused,
    Topic.JOB_STARTED: JobStarted,
    Topic.JOB_PROGRESS: JobProgress,
    Topic.JOB_STOPPING: JobStopping,
    Topic.JOB_PREEMPTING: JobPreempting,
    Topic.JOB_PREEMPTED: JobBack,
    Topic.JOB_REQUEUED: JobBack,
    Topic.JOB_RETRYING: JobRetrying,
    Topic.JOB_HELD: JobHeld,
    Topic.JOB_RELEASED: JobReleased,
    Topic.JOB_UPDATED: JobUpdated,
    Topic.JOB_REQUEUING: JobRequeuing,
    Topic.QPU_DOWN: QPUStatus,
    Topic.QPU_UP: QPUStatus,
    Topic.CALIBRATION_COMPLETE: CalibrationComplete,
    Topic.CALIBRATION_STARTED: CalibrationEpoch,
    Topic.CALIBRATION_DUE: CalibrationEpoch,
    Topic.CALIBRATION_PENDING: CalibrationEpoch,
    Topic.JOB_ADMISSION: AdmissionHold,
    Topic.JOB_CONTEXT_MISMATCH: ContextMismatch,
    Topic.PLUGIN_FAILED: PluginFailed,
    Topic.SESSION_OPENED: SessionOpened,
    Topic.SESSION_ENDED: SessionEnded,
}


P = TypeVar("P", bound=Payload)
CONTROL_PREFIX = "control."
UNSTAMPED_AT = datetime(1970, 1, 1, tzinfo=UTC)  # the time of an event nobody stamped yet
UNSTAMPED_ID = ""  # the id of an event nobody stamped yet


def control_topic(command: CommandName) -> str:
    """The routing key of the event that logs `command`: ``control.<command>``."""
    return CONTROL_PREFIX + command.value


def topic_of(event: Event) -> Topic | None:
    """The event's topic as an enum member (`Topic.CONTROL` for any ``control.*``), or None."""
    if event.topic.startswith(CONTROL_PREFIX):
        return Topic.CONTROL
    try:
        return Topic(event.topic)
    except ValueError:
        return None


def command_of(event: Event) -> CommandName | None:
    """The command a ``control.<command>`` event logs (None: not a control event, or a command
    this version does not know)."""
    if not event.topic.startswith(CONTROL_PREFIX):
        return None
    try:
        return CommandName(event.topic[len(CONTROL_PREFIX) :])
    except ValueError:
        return None


def _model_of(topic: Topic | CommandName) -> type[Payload]:
    if isinstance(topic, CommandName):
        return ControlApplied
    return PAYLOADS.get(topic, Empty)


def _topic(topic: Topic | CommandName | str) -> Topic | CommandName:
    """A topic given as text (``job.done``, ``control.pause``) as its enum member.

    Raises:
        ValueError: no such topic or command.
    """
    if isinstance(topic, Topic | CommandName):
        return topic
    if topic.startswith(CONTROL_PREFIX):
        return CommandName(topic[len(CONTROL_PREFIX) :])
    return Topic(topic)


def make_event(
    topic: Topic | CommandName, payload: Payload | None = None, **envelope: Any
) -> Event:
    """An unstamped event of `topic` (a `CommandName`: its ``control.<command>`` event) with
    `payload` as its data and the given envelope fields; `payload` stays on it in memory.

    Raises:
        TypeError: `payload` is not of the topic's payload model (None: the topic's model must
            need no field), or `topic` is the bare `Topic.CONTROL` prefix.
    """
    member = _topic(topic)
    if member is Topic.CONTROL:
        raise TypeError("a control event is built from its CommandName, not Topic.CONTROL")
    model = _model_of(member)
    if payload is None:
        try:
            payload = model()
        except ValidationError:
            raise TypeError(f"a {member} event needs a {model.__name__} payload") from None
    elif type(payload) is not model:
        raise TypeError(f"a {member} event carries {model.__name__}, not {type(payload).__name__}")
    name = control_topic(member) if isinstance(member, CommandName) else member.value
    envelope.setdefault("event_id", UNSTAMPED_ID)
    envelope.setdefault("at", UNSTAMPED_AT)
    event = Event(topic=name, data=payload.model_dump(mode="json", exclude_none=True), **envelope)
    event._payload = payload
    return event


def is_stamped(event: Event) -> bool:
    """Whether the event has its id and time (unstamped events never reach the log)."""
    return event.event_id != UNSTAMPED_ID


def stamp(event: Event, at: datetime, event_id: str) -> Event:
    """The event with its time and id (a copy; its payload model comes along)."""
    return event.model_copy(update={"at": at, "event_id": event_id})


def payload_of(event: Event, model: type[P]) -> P:
    """The event's data as `model`: the payload it was built with when it is one, else parsed
    from the data (and kept on the event when `model` is its topic's).

    Raises:
        ValueError: the data does not fit the model (a foreign or corrupt event).
    """
    kept = event._payload
    if isinstance(kept, model):
        return kept
    try:
        parsed = model.model_validate(event.data)
    except ValidationError as exc:
        raise ValueError(
            f"{event.topic} event {event.event_id}: {exc.errors()[0]['msg']}"
        ) from None
    if kept is None:
        topic = topic_of(event)
        own = ControlApplied if topic is Topic.CONTROL else PAYLOADS.get(topic) if topic else None
        if own is model:
            event._payload = parsed
    return parsed


def accepted_facts(event: Event) -> JobAccepted | AcceptedFacts:
    """A ``job.accepted`` (or ``job.resubmitted``) event's payload: the whole request when the
    event was built here, else its facts without the sequence (no sequence parsing on replay).

    Raises:
        ValueError: the data does not fit.
    """
    kept = event._payload
    if isinstance(kept, JobAccepted):
        return kept
    return payload_of(event, AcceptedFacts)
