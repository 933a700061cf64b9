"""The neutral shapes the event log is folded into (by `consumers.tools.eventlog.model`) and the
exports draw: runs on the QPU, periods, sessions, waiting counts, job histories. Nothing here knows a topic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class Run:
    """One stay of one job on the QPU.

    Attributes:
        state: the final state, PREEMPTED, INTERRUPTED, or RUNNING when the log ends first.
    """

    job_id: str
    job_class: str
    user: str | None
    started_at: datetime
    ended_at: datetime
    state: str
    shots: int = 0
    epoch: int = 0
    attempt: int = 1
    reason: str | None = None
    end_reason: str | None = None
    arrived_at: datetime | None = None
    lane: str | None = None  # an emulator lane's run (None: the QPU's)


@dataclass
class Period:
    """A stretch of time the QPU spent calibrating, paused, draining, in maintenance or down."""

    kind: str
    started_at: datetime
    ended_at: datetime
    reason: str | None = None
    open: bool = False
    by: str | None = None  # who set it (an operator's command; None: the owner or the backend)
    message: str | None = None  # the operator's message (maintenance)


@dataclass(frozen=True)
class WaitingSample:
    """How many jobs waited in each class just after `at`."""

    at: datetime
    by_class: dict[str, int]


@dataclass
class SessionSpan:
    """One session in the log from its opening to its end (`open`: the log ends first)."""

    session_id: str
    user: str | None
    allocation: str | None
    explicit: bool
    started_at: datetime
    ended_at: datetime
    reason: str | None = None
    open: bool = True


@dataclass(frozen=True)
class HistoryEntry:
    """One event of one job, as `qsched history` shows it."""

    at: datetime
    topic: str
    summary: str
    reason: str | None
    ignored: str | None = None  # why the owner's state did not use this event


@dataclass
class JobHistory:
    """Every event of one job, in log order, and what the log says about it."""

    job_id: str
    job_class: str | None = None
    user: str | None = None
    trace_id: str | None = None
    session_id: str | None = None
    final_state: str | None = None
    arrived_at: datetime | None = None
    first_started_at: datetime | None = None
    ended_at: datetime | None = None
    entries: list[HistoryEntry] = field(default_factory=list)

    def waited_s(self) -> float | None:
        """Seconds from arrival to the first start (None if either is missing)."""
        if self.arrived_at is None or self.first_started_at is None:
            return None
        return (self.first_started_at - self.arrived_at).total_seconds()

    def total_s(self) -> float | None:
        """Seconds from arrival to the final event (None if either is missing)."""
        if self.arrived_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.arrived_at).total_seconds()


@dataclass(frozen=True)
class BudgetMark:
    """A moment of a budget (`consumers.tools.eventlog.budgets`): an operator set it or topped it up
    (`kind` set, top-up; `by` who), or its spending crossed the warning share or reached it
    (warn, spent). `key` is its account, or account/user."""

    at: datetime
    key: str
    kind: str
    text: str
    by: str | None = None


@dataclass
class Timeline:
    """The log folded into the shapes that exports draw."""

    runs: list[Run] = field(default_factory=list)
    lane_runs: list[Run] = field(default_factory=list)  # on emulator lanes, never the QPU's
    periods: list[Period] = field(default_factory=list)
    sessions: list[SessionSpan] = field(default_factory=list)
    budget_marks: list[BudgetMark] = field(default_factory=list)
    waiting: list[WaitingSample] = field(default_factory=list)
    first_at: datetime | None = None
    last_at: datetime | None = None
    events: int = 0

    def busy_s(self) -> float:
        """QPU seconds spent running jobs."""
        return sum((r.ended_at - r.started_at).total_seconds() for r in self.runs)

    def span_s(self) -> float:
        """Seconds from the first event to the last."""
        if self.first_at is None or self.last_at is None:
            return 0.0
        return (self.last_at - self.first_at).total_seconds()
