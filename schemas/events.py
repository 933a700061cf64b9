"""Typed events: the topic enum, the payload model of each topic, and how events are built.

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

The payload models live by topic family: a job's in `schemas.job_payloads`, the owner's, its
machine's and its sessions' in `schemas.payloads`; this module names them all again, so
``from schemas.events import ...`` keeps working.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import ValidationError

from schemas.enums import CommandName, JobState
from schemas.envelope import Event
from schemas.job_payloads import AcceptedFacts as AcceptedFacts
from schemas.job_payloads import AdmissionHold as AdmissionHold
from schemas.job_payloads import ContextMismatch as ContextMismatch
from schemas.job_payloads import JobAccepted as JobAccepted
from schemas.job_payloads import JobBack as JobBack
from schemas.job_payloads import JobFacts as JobFacts
from schemas.job_payloads import JobHeld as JobHeld
from schemas.job_payloads import JobPreempting as JobPreempting
from schemas.job_payloads import JobProgress as JobProgress
from schemas.job_payloads import JobReleased as JobReleased
from schemas.job_payloads import JobRequeuing as JobRequeuing
from schemas.job_payloads import JobRetrying as JobRetrying
from schemas.job_payloads import JobStarted as JobStarted
from schemas.job_payloads import JobStopping as JobStopping
from schemas.job_payloads import JobUpdated as JobUpdated
from schemas.job_payloads import Refused as Refused
from schemas.messages import SnapshotPointer as SnapshotPointer  # belongs with snapshot events
from schemas.payloads import BatchClosed as BatchClosed
from schemas.payloads import BatchCreated as BatchCreated
from schemas.payloads import BatchFacts as BatchFacts
from schemas.payloads import CalibrationComplete as CalibrationComplete
from schemas.payloads import CalibrationEpoch as CalibrationEpoch
from schemas.payloads import ControlApplied as ControlApplied
from schemas.payloads import Empty as Empty
from schemas.payloads import OwnerActivated as OwnerActivated
from schemas.payloads import OwnerActivating as OwnerActivating
from schemas.payloads import Payload as Payload
from schemas.payloads import PluginFailed as PluginFailed
from schemas.payloads import QPUStatus as QPUStatus
from schemas.payloads import SessionEnded as SessionEnded
from schemas.payloads import SessionOpened as SessionOpened
from schemas.payloads import Snapshot as Snapshot


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
