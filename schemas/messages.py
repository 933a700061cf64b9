"""Pydantic models of every message on the wire (DESIGN section 3), and their registry.

The models live by concern: the base and id forms in `schemas.wire`, a job's messages in
`schemas.jobs`, the control plane's in `schemas.control`, the event envelope in
`schemas.envelope`; the owner's own announcements (device, snapshot pointer, heartbeat) are
here. qsched's own code imports each model from the module that defines it; this module names
them all again (every model the codec decodes is in `ALL_MESSAGES`), so site code written against
``from schemas.messages import ...`` keeps working. The public names are those of `schemas`.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import AwareDatetime, Field

from schemas.budgets import BudgetStatus as BudgetStatus  # part of ControlReply
from schemas.control import BATCH_COMMANDS as BATCH_COMMANDS
from schemas.control import BUDGET_CHANGES as BUDGET_CHANGES
from schemas.control import JOB_COMMANDS as JOB_COMMANDS
from schemas.control import RESERVATION_CHANGES as RESERVATION_CHANGES
from schemas.control import SESSION_COMMANDS as SESSION_COMMANDS
from schemas.control import ControlCommand as ControlCommand
from schemas.control import ControlReply as ControlReply
from schemas.control import JobSummary as JobSummary
from schemas.details import BatchDetail as BatchDetail  # part of ControlReply
from schemas.details import JobDetail as JobDetail  # part of ControlReply
from schemas.details import StandbyOwner as StandbyOwner  # part of StatusReport
from schemas.envelope import Event as Event
from schemas.jobs import JobError as JobError
from schemas.jobs import JobPosition as JobPosition
from schemas.jobs import JobProgress as JobProgress
from schemas.jobs import JobReceipt as JobReceipt
from schemas.jobs import JobRequest as JobRequest
from schemas.jobs import JobResult as JobResult
from schemas.jobs import RunInterval as RunInterval
from schemas.jobs import SlurmContext as SlurmContext
from schemas.jobs import Timings as Timings
from schemas.reports import QueueEntry as QueueEntry  # part of ControlReply and JobPosition
from schemas.reports import RunningJob as RunningJob  # part of StatusReport
from schemas.reports import SessionSummary as SessionSummary  # part of ControlReply
from schemas.reports import StatusReport as StatusReport  # part of ControlReply
from schemas.reports import UsageReport as UsageReport  # part of ControlReply
from schemas.reservations import Reservation as Reservation  # part of ControlCommand/Reply
from schemas.wire import ID_PATTERN as ID_PATTERN
from schemas.wire import JOB_CLASS_PATTERN as JOB_CLASS_PATTERN
from schemas.wire import MAX_ID_LENGTH as MAX_ID_LENGTH
from schemas.wire import MAX_PRIORITY as MAX_PRIORITY
from schemas.wire import MIN_JOB_PREFIX as MIN_JOB_PREFIX
from schemas.wire import IdSource as IdSource
from schemas.wire import Message as Message
from schemas.wire import new_id as new_id
from schemas.wire import seeded_ids as seeded_ids
from schemas.wire import utc_now as utc_now


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
