"""The control plane on the wire: an operator's or submitter's command, and the owner's reply."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from schemas.budgets import BudgetStatus
from schemas.details import BatchDetail, JobDetail
from schemas.enums import CommandName, JobState, Mode
from schemas.envelope import Event
from schemas.jobs import JobError, JobResult
from schemas.reports import QueueEntry, SessionSummary, StatusReport, UsageReport
from schemas.reservations import Reservation
from schemas.wire import ID_PATTERN, MAX_ID_LENGTH, MAX_PRIORITY, Message, new_id, utc_now

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
