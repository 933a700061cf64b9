"""What the owner reports of its QPU and queue: `qsched status` and `qsched queue` entries.

Parts of `ControlReply` and `JobPosition` (in `schemas.messages`), apart so that module stays
about the wire messages themselves.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.details import StandbyOwner
from schemas.enums import JobState, Mode, QPUState
from schemas.reservations import Reservation


class RunningJob(BaseModel):
    """The job on the QPU, as `status` shows it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str
    job_class: str
    shots: int
    started_at: AwareDatetime
    user: str | None = None
    shots_done: int = Field(default=0, ge=0, description="shots measured so far (earlier runs too)")
    epoch: int | None = Field(default=None, description="calibration epoch this run is under")


class SessionPhase(StrEnum):
    """Where a session stands (`consumers.core.session_view` says which holds when)."""

    HOLDING = "holding"  # the QPU waits for its next job (its class's exclusivity)
    GRACE = "grace"  # its next job goes first in its class
    RUNNING = "running"
    QUEUED = "queued"
    IDLE = "idle"
    ENDED = "ended"


class SessionSummary(BaseModel):
    """One session as `qsched status`, `queue`, `top` and `history` show it.

    Attributes:
        left_s: seconds left of its hold (HOLDING), grace (GRACE) or idle timeout (IDLE).
        waiting: its jobs waiting in the backlog.
        ends_at: when its maximum time runs out.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    session_id: str
    user: str | None = None
    allocation: str | None = None
    opened_at: AwareDatetime
    runs: int = 0
    qpu_s: float = 0.0
    exclusive_s: float | None = None
    explicit: bool = True
    phase: SessionPhase = SessionPhase.IDLE
    left_s: float | None = None
    waiting: int = 0
    job_class: str | None = None
    ends_at: AwareDatetime | None = None
    ended_at: AwareDatetime | None = None
    ended_reason: str | None = None


class StatusReport(BaseModel):
    """What an operator sees with `qsched status`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    owner_id: str
    qpu_state: QPUState
    mode: Mode
    mode_message: str | None = None
    running: RunningJob | None = None
    queue_depth: dict[str, int] = Field(default_factory=dict)
    held: dict[str, int] = Field(default_factory=dict)
    epoch: int = 0
    backend: str
    last_decision: str | None = None
    held_reasons: dict[str, str] = Field(default_factory=dict)
    calibration_valid_until: AwareDatetime | None = Field(
        default=None, description="when the calibration window closes (None: no window)"
    )
    calibration_pending: bool = Field(
        default=False,
        description="an operator started a calibration that waits for the running job to end",
    )
    waiting_by_account: dict[str, int] = Field(
        default_factory=dict, description="waiting jobs per Slurm account ('' for none)"
    )
    lanes: dict[str, RunningJob | None] = Field(
        default_factory=dict, description="emulator lanes and the job on each (None: free)"
    )
    standbys: list[StandbyOwner] = Field(
        default_factory=list, description="owners waiting to take over, by their heartbeats"
    )
    sessions: list[SessionSummary] = Field(
        default_factory=list, description="open sessions (a non-operator sees their own)"
    )
    reservations: list[Reservation] = Field(
        default_factory=list, description="reservations open now or to come, by start"
    )


class QueueEntry(BaseModel):
    """One waiting job in policy order, as `qsched queue` and `handle.position()` show it.

    Attributes:
        position: 1 for the job that starts next; None while the job is held.
        eta_s: estimated seconds until it starts; None when unknown (held, paused, calibrating).
        eta_unknown: why `eta_s` is None for a job in line: what the QPU is doing instead
            (``paused``, ``calibrating``, ``draining``, ``down``).
        factors: the ordering key's factors, named (like Slurm's ``sprio``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str
    job_class: str
    user: str
    account: str | None = None
    priority: int
    shots: int
    submitted_at: AwareDatetime
    position: int | None = None
    eta_s: float | None = None
    eta_unknown: str | None = None
    held: str | None = None
    state: JobState = JobState.QUEUED
    factors: dict[str, Any] = Field(default_factory=dict)
    session_id: str | None = Field(default=None, description="the session the job is in")
    session_phase: SessionPhase | None = None
    session_left_s: float | None = Field(
        default=None, description="seconds left of its session's hold, grace or idle timeout"
    )


class UsageRow(BaseModel):
    """One row of `qsched usage` (like Slurm's ``sreport``): what runs used in a period, for
    one account, user, class, day or allocation (the fields it is grouped by are set).

    Attributes:
        jobs: jobs that ended in the period.
        runs, shots, qpu_s: runs on the QPU, the shots they measured, their seconds.
        lane_runs, lane_shots, emulator_s: runs on emulator lanes (never QPU time).
        started, wait_s: jobs that first started in the period, their queue waits summed.
        preemptions: runs preempted.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    account: str | None = None
    user: str | None = None
    job_class: str | None = None
    day: str | None = None
    allocation: str | None = None
    jobs: int = 0
    runs: int = 0
    shots: int = 0
    qpu_s: float = 0.0
    lane_runs: int = 0
    lane_shots: int = 0
    emulator_s: float = 0.0
    started: int = 0
    wait_s: float = 0.0
    preemptions: int = 0

    @property
    def mean_wait_s(self) -> float | None:
        """The mean queue wait of the jobs that started (None: none did)."""
        return self.wait_s / self.started if self.started else None


class UsageReport(BaseModel):
    """The owner's answer to `usage`: the rows, and the period they cover.

    Attributes:
        since, until: the period, rounded out to the ledger's buckets (None: open).
        kept_from: the oldest usage the owner still holds (older: ``--from-log``).
        bucket_s: the ledger's bucket (3600 for the owner: periods are whole hours).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rows: list[UsageRow] = Field(default_factory=list)
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    kept_from: AwareDatetime | None = None
    bucket_s: int = 3600

    def table(self) -> tuple[list[str], list[list[str]]]:
        """The rows as text, sreport-like: the columns they are grouped by, then jobs, runs,
        shots, QPU seconds, emulator seconds, mean wait and preemptions (CSV and tables)."""
        keys = [k for k in USAGE_KEYS if any(getattr(r, k) is not None for r in self.rows)]
        header = [*keys, *USAGE_FIGURES]
        lines = [
            [
                *((getattr(r, k) if getattr(r, k) != "" else "(none)") or "" for k in keys),
                str(r.jobs),
                str(r.runs),
                str(r.shots),
                f"{r.qpu_s:.3f}",
                f"{r.emulator_s:.3f}",
                "" if r.mean_wait_s is None else f"{r.mean_wait_s:.3f}",
                str(r.preemptions),
            ]
            for r in self.rows
        ]
        return header, lines


USAGE_KEYS = ("account", "user", "job_class", "day", "allocation")
USAGE_FIGURES = ("jobs", "runs", "shots", "qpu_s", "emulator_s", "mean_wait_s", "preemptions")
