"""A waiting job's scheduling facts, and the index that keeps the backlog in policy order.

Theory of operation. The policy's order (`consumers.core.order_key`) depends on `now`
(aging) and on usage that changes as jobs run, so no static sort can hold it. It does hold inside
a *cohort*: the jobs of one class, one submitter, one site term (the ordering plugin's, fixed at
acceptance) and one AMQP priority, sorted by submission time (a cohort is no emulator lane:
`consumers.core.lanes` are those).
Within a cohort every factor but age is equal, and an older job has an equal or higher effective
priority, so the first startable job of a cohort is the cohort's best. A decision therefore looks at
one job per cohort (classes x submitters x site terms x 10 priorities), not at every waiting job,
and skips held jobs only where they sit at a cohort's head. `apply` keeps the index (add/remove are O(log n)).
Sessions in their grace window go first in their class, so the index also maps session -> jobs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sortedcontainers import SortedList

from schemas.context import VerifiedContext
from schemas.jobs import RunInterval

if TYPE_CHECKING:
    from schemas.events import AcceptedFacts, JobAccepted

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Waiting:
    """What the policy needs to know of a job (never its sequence).

    Attributes:
        shots: the job's shots in all; `remaining_shots` is what its next run takes.
        account, allocation, allocation_end: the job's verified context (the registry's, never
            the client's: `schemas.context`): its account, the Slurm job id of its allocation
            and when that ends.
        validated_epoch: the calibration epoch its sequence was last checked against.
        prior_counts: counts measured by earlier runs (preempted or cut off), kept.
        site_term: the ordering plugin's term (higher goes first within a class).
        admission_hold: why an admission plugin holds the job (None: not held).
        failures: runs that failed with a retryable backend error (the retry budget's count).
        not_before: a job retried after a failure may not start before this time.
        held_by: who holds the job (`qsched hold`); `operator_hold` when an operator did, so
            only an operator may release it.
        position_updates: its submitter asked to be told its place in line (`JobPosition`).
        runs: the job's earlier runs (preempted, requeued, retried, recovered), in order.
    """

    job_id: str
    job_class: str
    priority: int = 0
    submitted_at: datetime = EPOCH
    shots: int = 1
    user: str = ""
    account: str | None = None
    session_id: str | None = None
    batch_id: str | None = None
    allocation: str | None = None
    allocation_end: datetime | None = None
    min_epoch: int | None = None
    deadline: datetime | None = None
    max_runtime_s: float | None = None
    reply_to: str | None = None
    trace: dict[str, str] = field(default_factory=dict)
    attempt: int = 1
    preemptions: int = 0
    prior_counts: dict[str, int] = field(default_factory=dict)
    validated_epoch: int = 0
    accepted_at: datetime | None = None
    site_term: float = 0.0
    admission_hold: str | None = None
    require_qpu: bool = False
    failures: int = 0
    not_before: datetime | None = None
    held_by: str | None = None
    operator_hold: bool = False
    position_updates: bool = False
    runs: tuple[RunInterval, ...] = ()

    @property
    def cohort_key(self) -> tuple[float, int]:
        """The cohort of the job within its submitter's: (site term, AMQP priority)."""
        return (self.site_term, self.priority)

    @property
    def has_hold_facts(self) -> bool:
        """Whether the job carries a reason of its own to wait that no time passing lifts by
        itself (a hold, an admission plugin's hold, a retry wait, a calibration epoch)."""
        return (
            self.held_by is not None
            or self.admission_hold is not None
            or self.not_before is not None
            or self.min_epoch is not None
        )

    @property
    def first_started_at(self) -> datetime | None:
        """When the job first started (None: it has not run yet)."""
        return self.runs[0].started_at if self.runs else None

    @property
    def queued_at(self) -> datetime:
        """Where the job stands in line (age, aging): when the owner accepted it. The client's
        `submitted_at` is only reported, so a client's clock cannot buy a job age."""
        return self.accepted_at if self.accepted_at is not None else self.submitted_at

    @classmethod
    def of(cls, accepted: JobAccepted | AcceptedFacts, epoch: int, at: datetime) -> Waiting:
        """The facts of a `job.accepted` payload, checked against calibration `epoch`."""
        job = accepted.job
        verified = accepted.verified or VerifiedContext.claimed(job.slurm)
        return cls(
            job_id=job.job_id,
            job_class=job.job_class,
            priority=job.priority,
            shots=job.shots,
            submitted_at=job.submitted_at,
            user=accepted.user,
            account=verified.account,
            session_id=job.session_id,
            batch_id=job.batch_id,
            allocation=verified.allocation,
            allocation_end=verified.allocation_end,
            min_epoch=job.min_epoch,
            deadline=job.deadline,
            max_runtime_s=job.max_runtime_s,
            reply_to=accepted.reply_to,
            trace=dict(accepted.trace),
            validated_epoch=epoch,
            accepted_at=at,
            site_term=accepted.site_term or 0.0,
            require_qpu=job.require_qpu,
            attempt=accepted.attempt or 1,
            position_updates=job.position_updates,
        )

    @property
    def account_key(self) -> str:
        """The fair-share account (the Slurm account; "" when the job has none)."""
        return self.account or ""

    @property
    def user_key(self) -> str:
        """The fair-share user, within its account."""
        return f"{self.account_key}/{self.user}"

    @property
    def remaining_shots(self) -> int:
        """Shots the next run takes: the job's shots less those already measured."""
        return max(self.shots - sum(self.prior_counts.values()), 0)


Cohort = Any  # SortedList of (queued_at, job_id, Waiting); sortedcontainers ships no types
Sorted = Any  # any other SortedList


@dataclass
class OrderIndex:
    """Waiting jobs in cohorts (class -> user -> (site term, priority)), by session, counted, and
    those with hold facts of their own (`Waiting.has_hold_facts`: what `status` looks through)."""

    cohorts: dict[str, dict[str, dict[tuple[float, int], Cohort]]] = field(default_factory=dict)
    sessions: dict[str, set[str]] = field(default_factory=dict)
    deadlines: Sorted = field(default_factory=SortedList)
    per_class: Counter[str] = field(default_factory=Counter)
    per_user: Counter[str] = field(default_factory=Counter)
    jobs: dict[str, Waiting] = field(default_factory=dict)
    flagged: dict[str, None] = field(default_factory=dict)  # jobs with hold facts, in order

    def add(self, job: Waiting) -> None:
        """Index a job that starts waiting."""
        users = self.cohorts.setdefault(job.job_class, {})
        levels = users.setdefault(job.user_key, {})
        levels.setdefault(job.cohort_key, SortedList()).add((job.queued_at, job.job_id, job))
        if job.session_id:
            self.sessions.setdefault(job.session_id, set()).add(job.job_id)
        if job.deadline is not None:
            self.deadlines.add((job.deadline, job.job_id))
        self.per_class[job.job_class] += 1
        self.per_user[job.user] += 1
        self.jobs[job.job_id] = job
        if job.has_hold_facts:
            self.flagged[job.job_id] = None

    def remove(self, job: Waiting) -> None:
        """Forget a job that stopped waiting (started or ended)."""
        users = self.cohorts[job.job_class]
        levels = users[job.user_key]
        cohort = levels[job.cohort_key]
        cohort.remove((job.queued_at, job.job_id, job))
        if not cohort:
            del levels[job.cohort_key]
            if not levels:
                del users[job.user_key]
        if job.session_id:
            members = self.sessions.get(job.session_id, set())
            members.discard(job.job_id)
            if not members:
                self.sessions.pop(job.session_id, None)
        if job.deadline is not None:
            self.deadlines.discard((job.deadline, job.job_id))
        self.per_class[job.job_class] -= 1
        self.per_user[job.user] -= 1
        del self.jobs[job.job_id]
        self.flagged.pop(job.job_id, None)

    def session_jobs(self, session_id: str) -> Iterator[Waiting]:
        """The waiting jobs of one session."""
        for job_id in self.sessions.get(session_id, ()):
            yield self.jobs[job_id]

    def expired(self, now: datetime) -> list[str]:
        """Jobs whose deadline has passed."""
        out: list[str] = []
        for deadline, job_id in self.deadlines:
            if deadline > now:
                break
            out.append(job_id)
        return out

    def oldest(self, job_class: str) -> Iterator[Waiting]:
        """The oldest job of every cohort of a class (for queue-age limits)."""
        for levels in self.cohorts.get(job_class, {}).values():
            for cohort in levels.values():
                yield cohort[0][2]
