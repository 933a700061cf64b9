"""Event payloads of the owner, its machine and its sessions: the data of ``owner.*``,
``batch.*``, ``qpu.*``, ``calibration.*``, ``control.*``, ``plugin.*`` and ``session.*`` events,
and the base every payload model extends. The topics that carry each are `schemas.events.PAYLOADS`.
"""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.budgets import Budget
from schemas.context import Allocation
from schemas.enums import Mode
from schemas.reservations import Reservation


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
        " (consumers.owner.joblog.JobOffsets.to_data)",
    )


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
