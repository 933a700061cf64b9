"""The interface a site plugin implements: one small Protocol per control point.

A plugin is a Python entry point in one of four groups (`GROUPS`). The entry point names a
*factory*: a callable the owner calls once at start with the plugin's options from the policy
file (``[plugins.options.<name>]``) as keyword arguments; a class is the usual factory. Backend
factories also get the owner's `Settings` first.

    [project.entry-points."qsched.admission"]
    quota = "mysite.qsched:QuotaCheck"      # QuotaCheck(**options).admit(job) -> Verdict

What each control point may do:

- admission (`AdmissionPlugin`): asked for every new job before it is accepted; answers
  `Verdict.accept()`, `Verdict.refuse(reason)` (the submitter gets REJECTED with the reason) or
  `Verdict.hold(reason)` (the job is accepted but does not start; it is asked again later).
- ordering (`OrderingPlugin`): a number for a job, higher goes first within its class (after a
  session's grace, before AMQP priority). It must be a pure function of the job's facts: the
  owner computes it once at acceptance and records it in ``job.accepted``, and ``simulate`` can
  recompute it with another plugin. Few distinct values keep dispatch fast (one order-index
  cohort per value).
- event sinks (`EventSink`): `send` gets batches of events on a thread of its own; raising
  makes the owner retry the batch with backoff.
- backends: a factory returning a `consumers.backends.base.Backend`; its
  `start(request, reports)` reports the run through the `RunReports` it is given (progress, then
  exactly one `finished`), from any thread. (Not to be confused with event sinks.)

Plugins run under a time limit and their failures never stop the owner (`consumers.plugins`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

from consumers.core.order import Waiting
from schemas.context import VerifiedContext
from schemas.envelope import Event
from schemas.jobs import JobRequest

GROUPS = {
    "admission": "qsched.admission",
    "ordering": "qsched.ordering",
    "event_sinks": "qsched.event_sinks",
    "backends": "qsched.backends",
}


@dataclass(frozen=True)
class JobFacts:
    """What a plugin sees of a job (never its sequence).

    Attributes:
        user: the submitter as the broker authenticated it.
        account: the job's verified account: its registered allocation's Slurm account, or
            outside allocations the policy's ``[accounts] default`` for the user (None: none).
        allocation: the Slurm job id of its registered allocation (None: outside one).
    """

    job_id: str
    job_class: str
    user: str
    shots: int
    priority: int = 0
    account: str | None = None
    allocation: str | None = None
    session_id: str | None = None
    submitted_at: datetime | None = None
    deadline: datetime | None = None

    @classmethod
    def of_request(cls, job: JobRequest, user: str, verified: VerifiedContext) -> JobFacts:
        """The facts of a job as it arrives, with the context the owner verified (never the
        client's claim)."""
        return cls(
            job_id=job.job_id,
            job_class=job.job_class,
            user=user,
            shots=job.shots,
            priority=job.priority,
            account=verified.account,
            allocation=verified.allocation,
            session_id=job.session_id,
            submitted_at=job.submitted_at,
            deadline=job.deadline,
        )

    @classmethod
    def of_waiting(cls, job: Waiting) -> JobFacts:
        """The facts of a job in the backlog (same values as when it arrived)."""
        return cls(
            job_id=job.job_id,
            job_class=job.job_class,
            user=job.user,
            shots=job.shots,
            priority=job.priority,
            account=job.account,
            allocation=job.allocation,
            session_id=job.session_id,
            submitted_at=job.submitted_at,
            deadline=job.deadline,
        )


class Admit(StrEnum):
    """An admission plugin's answer."""

    ACCEPT = "accept"
    REFUSE = "refuse"
    HOLD = "hold"


@dataclass(frozen=True)
class Verdict:
    """An admission plugin's answer and the reason shown to the submitter (refuse, hold)."""

    action: Admit
    reason: str = ""

    @classmethod
    def accept(cls) -> Verdict:
        """The job may be accepted (the next plugin is asked)."""
        return cls(Admit.ACCEPT)

    @classmethod
    def refuse(cls, reason: str) -> Verdict:
        """The job is refused: REJECTED with `reason`, dead-lettered."""
        return cls(Admit.REFUSE, reason)

    @classmethod
    def hold(cls, reason: str) -> Verdict:
        """The job is accepted but held with `reason` until a later ask lets it go."""
        return cls(Admit.HOLD, reason)


@runtime_checkable
class AdmissionPlugin(Protocol):
    """Called for each job before it is accepted, and again for the jobs it holds."""

    def admit(self, job: JobFacts) -> Verdict:
        """Accept, refuse or hold `job`."""
        ...


@runtime_checkable
class OrderingPlugin(Protocol):
    """A site term in the ordering key (pure: the same facts always give the same term)."""

    def term(self, job: JobFacts) -> float:
        """The job's term; higher goes first within its class."""
        ...


@runtime_checkable
class EventSink(Protocol):
    """Receives every event the owner writes, in order, in batches, off the dispatch path."""

    def send(self, events: Sequence[Event]) -> None:
        """Deliver a batch; raise to have it retried."""
        ...


def checked_verdict(answer: object) -> Verdict:
    """`answer` if it is a Verdict with a reason where one is needed.

    Raises:
        TypeError: anything else (the plugin's answer is then treated as its failure).
    """
    if not isinstance(answer, Verdict) or not isinstance(answer.action, Admit):
        raise TypeError(f"admit() returned {answer!r}, not a Verdict")
    if answer.action is not Admit.ACCEPT and not answer.reason.strip():
        raise TypeError(f"a {answer.action.value} verdict needs a reason")
    return answer


def checked_term(answer: object) -> float:
    """`answer` as a finite float.

    Raises:
        TypeError: not a finite real number.
    """
    if isinstance(answer, bool) or not isinstance(answer, int | float) or not math.isfinite(answer):
        raise TypeError(f"term() returned {answer!r}, not a finite number")
    return float(answer)
