"""What the owner's state holds: `Run`, and `StateData`, the fields of `OwnerState`.

`StateData` is the data the event fold keeps (the backlog and its order index, the runs, who
submitted every job, the usage ledgers, the QPU state), the queries every reader uses on it, and
the bookkeeping that keeps its parts consistent: a job enters or leaves `waiting` and `index`
together, QPU time is charged to the three usage ledgers at once, and a QPU move goes through
the state machine (`consumers.core.machine`). Which event changes what is `OwnerState.apply`'s
(`consumers.core.state`): the bookkeeping methods here are its handlers' tools, nobody else's.
A new field or query changes this module; a new event topic changes the fold.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from consumers.core.fairshare import Usage
from consumers.core.ledger import Ledger
from consumers.core.machine import QPUEvent, transition
from consumers.core.order import OrderIndex, Waiting
from consumers.core.shotrate import ShotRate
from schemas.budgets import Budget
from schemas.context import Allocation
from schemas.enums import JobState, Mode, QPUState
from schemas.jobs import JobError
from schemas.policy import Policy
from schemas.reservations import Reservation

REMEMBERED_IGNORED = 1000  # the newest ignored events whose reason the state keeps


@dataclass(frozen=True)
class IgnoredEvent:
    """An event the fold could not use, and why (shown by `qsched history` and
    `qsched events replay --explain`)."""

    event_id: str
    topic: str
    job_id: str | None
    why: str


@dataclass
class Run:
    """The job on the QPU: its facts, when this run started, and how it is being stopped."""

    job: Waiting
    started_at: datetime
    attempt: int
    epoch: int
    backend: str
    counts: dict[str, int] = field(default_factory=dict)
    preempting: str | None = None
    stop_error: JobError | None = None
    stop_state: JobState | None = None
    lane: str | None = None
    specs: str | None = None
    restart: bool = False
    in_grace: bool = False  # started while its session was in grace: the session's turn goes on


@dataclass
class Session:
    """A session: its owner, limits and how it went (`consumers.core.sessions` decides on it).

    Attributes:
        explicit: opened by ``session-open`` (QRMI acquire, the SDK, Pulser's open batch);
            else by the first job naming it.
        last_activity_at: its last job accepted or run ended (the idle timeout counts from it).
        runs: runs of its jobs that ended; `qpu_s` their QPU seconds.
        turn_runs: the QPU runs of its jobs in its current turn: a run that started without
            grace begins a turn, each run started in grace goes on with it; `turn_qpu_s` their
            QPU seconds. The policy bounds its grace by them (`within`).
    """

    session_id: str
    user: str
    opened_at: datetime
    max_time_s: float
    idle_timeout_s: float
    allocation: str | None = None
    account: str | None = None
    exclusive_s: float | None = None
    job_class: str | None = None
    explicit: bool = True
    ended_at: datetime | None = None
    ended_reason: str | None = None
    last_run_ended_at: datetime | None = None
    last_activity_at: datetime | None = None
    runs: int = 0
    qpu_s: float = 0.0
    turn_runs: int = 0
    turn_qpu_s: float = 0.0

    @property
    def is_open(self) -> bool:
        """Not ended: it takes new jobs."""
        return self.ended_at is None

    def within(self, bounds: GraceBounds) -> bool:
        """Whether its turn may go on with grace: under the policy's runs and QPU seconds."""
        if bounds.max_consecutive is not None and self.turn_runs >= bounds.max_consecutive:
            return False
        return bounds.max_qpu_s is None or self.turn_qpu_s < bounds.max_qpu_s


@dataclass(frozen=True)
class GraceBounds:
    """How far a session's turn on the QPU may go with grace: consecutive runs and QPU seconds
    (None: unbounded). The policy's ``session_max_consecutive`` and ``session_turn_max_qpu_s``."""

    max_consecutive: int | None = None
    max_qpu_s: float | None = None

    @classmethod
    def of(cls, policy: Policy) -> GraceBounds:
        """The policy's bounds."""
        return cls(policy.session_max_consecutive, policy.session_turn_max_qpu_s)


@dataclass
class BudgetRecord:
    """What operators did to one budget (``account`` or ``account/user``): the budget they set
    (None: the policy's, if any) and a top-up of the period starting at `top_up_start`."""

    budget: Budget | None = None
    top_up_s: float = 0.0
    top_up_start: datetime | None = None


@dataclass
class Batch:
    """A batch: its sequence's digest and declared variables (the sequence itself stays in the
    log, in `batch.created`), whether jobs may still join, and its jobs with their runs and
    variables, in the order they joined."""

    batch_id: str
    user: str
    job_class: str
    digest: str
    created_at: datetime
    variables: dict[str, tuple[str, int]] = field(default_factory=dict)
    open: bool = False
    canceled: bool = False
    session_id: str | None = None
    reply_to: str | None = None
    atom_order: list[str] = field(default_factory=list)
    basis: str | None = None
    jobs: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)


@dataclass
class StateData:
    """Everything the owner knows, as the fold of the log left it.

    Attributes:
        term: highest activation term seen; events of lower terms are ignored.
        qpu: the QPU state machine's state (`consumers.core.machine`).
        mode: the site mode an operator set (None: the policy's).
        owners: submitter of every job ever accepted or refused, by job id.
        finished: final state of every job that ended, by job id.
        sessions: the sessions, open and recently ended, by id (`Session`).
        numbers: the number of every remembered job (1, 2, 3... in acceptance order), by job id;
            `by_number` is its inverse and `last_number` the highest given.
        allocations: the allocation registry: Slurm allocations by id, as the prolog (or an
            operator) registered them with ``allocation-started``.
        ended_allocations: ids of allocations whose epilog ran (registered or not).
        lanes: the runs on emulator lanes, by lane name (the QPU's run is `running`).
        batches: the batches, by batch id (the last `REMEMBERED_BATCHES` created).
        ledger: QPU and emulator time, shots, waits and preemptions per account, user and
            class (`consumers.core.ledger`), charged as runs end.
        budgets: operators' budgets and top-ups, by ``account`` or ``account/user``.
        reservations: reservations by name (`consumers.core.reservations`).
        shot_rate: the shots and seconds of the last QPU runs, which ETAs count with
            (`consumers.core.shotrate`).
        ignored: events that could not be applied (stale term, unknown job, illegal move).
        ignored_events: the newest of those, each with why (not in snapshots).
        policy: the policy in force as the log has it (TOML text of the last activation or
            reload-policy; None: the defaults, or a log written before policies were logged).
    """

    term: int = 0
    owner_id: str | None = None
    policy: str | None = None
    qpu: QPUState = QPUState.IDLE
    mode: Mode | None = None
    mode_message: str | None = None
    epoch: int = 0
    calibrated_at: datetime | None = None
    device: str | None = None
    calibration_pending: bool = False
    due_announced: int | None = None
    waiting: dict[str, Waiting] = field(default_factory=dict)
    running: Run | None = None
    lanes: dict[str, Run] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    finished: dict[str, JobState] = field(default_factory=dict)
    allocations: dict[str, Allocation] = field(default_factory=dict)
    ended_allocations: set[str] = field(default_factory=set)
    sessions: dict[str, Session] = field(default_factory=dict)
    numbers: dict[str, int] = field(default_factory=dict)
    by_number: dict[int, str] = field(default_factory=dict)
    last_number: int = 0
    last_run_session: str | None = None  # the session of the QPU's last finished run
    batches: dict[str, Batch] = field(default_factory=dict)
    account_usage: Usage = field(default_factory=Usage)
    user_usage: Usage = field(default_factory=Usage)
    class_usage: Usage = field(default_factory=Usage)
    ledger: Ledger = field(default_factory=Ledger)
    budgets: dict[str, BudgetRecord] = field(default_factory=dict)
    reservations: dict[str, Reservation] = field(default_factory=dict)
    shot_rate: ShotRate = field(default_factory=ShotRate)
    index: OrderIndex = field(default_factory=OrderIndex)
    events: int = 0
    ignored: int = 0
    ignored_events: deque[IgnoredEvent] = field(
        default_factory=lambda: deque(maxlen=REMEMBERED_IGNORED)
    )
    last_event_id: str | None = None

    # ---- reading -----------------------------------------------------------------------------

    def effective_mode(self, policy_mode: Mode) -> Mode:
        """The mode in force: an operator's, else the policy's."""
        return self.mode if self.mode is not None else policy_mode

    def run_of(self, job_id: str | None) -> Run | None:
        """The run of `job_id`, on the QPU or on a lane (None: not running)."""
        run = self.running
        if run is not None and run.job.job_id == job_id:
            return run
        return next((r for r in self.lanes.values() if r.job.job_id == job_id), None)

    def owner_of(self, job_id: str) -> str | None:
        """Who submitted `job_id` (None: never seen)."""
        return self.owners.get(job_id)

    def job_of_number(self, number: int, user: str | None) -> str | None:
        """The id of job `number` if `user` submitted it (None: unknown, or another user's)."""
        job_id = self.by_number.get(number)
        if job_id is None or (user is not None and self.owners.get(job_id) != user):
            return None
        return job_id

    def sessions_in_grace(
        self, now: datetime, grace_s: float, bounds: GraceBounds
    ) -> frozenset[str]:
        """Sessions whose last run ended less than `grace_s` ago and whose turn is within the
        policy's bounds (`Session.within`): their next job goes first in its class."""
        since = now - timedelta(seconds=grace_s)
        return frozenset(
            s.session_id
            for s in self.sessions.values()
            if s.last_run_ended_at is not None and s.last_run_ended_at > since and s.within(bounds)
        )

    def ignored_of(self, job_id: str) -> dict[str, str]:
        """Why the fold ignored events of `job_id` (event id -> why), of those it remembers."""
        return {e.event_id: e.why for e in self.ignored_events if e.job_id == job_id}

    # ---- bookkeeping, for the fold's handlers only -------------------------------------------

    def _number(self, job_id: str, number: int | None) -> None:
        if number is None or job_id in self.numbers:
            return
        self.numbers[job_id] = number
        self.by_number[number] = job_id
        self.last_number = max(self.last_number, number)

    def _forget_number(self, job_id: str) -> None:
        number = self.numbers.pop(job_id, None)
        if number is not None:
            self.by_number.pop(number, None)

    def _move(self, what: QPUEvent) -> None:
        self.qpu = transition(self.qpu, what, busy=self.running is not None)

    def _charge(self, job: Waiting, seconds: float, at: datetime) -> None:
        if seconds <= 0:
            return
        self.account_usage.add(job.account_key, seconds, at)
        self.user_usage.add(job.user_key, seconds, at)
        self.class_usage.add(job.job_class, seconds, at)

    def _wait(self, job: Waiting) -> None:
        self.waiting[job.job_id] = job
        self.index.add(job)

    def _rewait(self, job: Waiting) -> None:
        """Replace a waiting job's facts (its cohort may change)."""
        self._unwait(job.job_id)
        self._wait(job)

    def _unwait(self, job_id: str) -> Waiting | None:
        job = self.waiting.pop(job_id, None)
        if job is not None:
            self.index.remove(job)
        return job
