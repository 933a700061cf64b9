"""The scheduling decision, as a pure function of the owner's view, the candidates and `now`.

`decide` answers one question each time something changes (a job arrives, the QPU frees, an
operator acts, a timer fires): what does the QPU do next? The order between candidates is strict
rank between classes (lower rank first), then AMQP priority within a class (higher first), then
age (older first), then job id so that the order is total. Candidates the policy may not start now
(their class is not allowed in the current mode) are held with a reason, never dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from consumers.core.machine import DISPATCHING
from schemas.enums import ErrorCode, Mode, QPUState
from schemas.messages import JobError
from schemas.policy import Policy


@dataclass(frozen=True)
class Candidate:
    """A job the owner could start: what the policy needs to know of it.

    Attributes:
        key: the shell's handle for the job (e.g. its delivery); opaque to the core.
    """

    job_id: str
    job_class: str
    priority: int
    enqueued_at: datetime
    shots: int
    user: str | None = None
    key: int = 0
    preemptions: int = 0


@dataclass(frozen=True)
class OwnerView:
    """What the core knows of the owner when it decides."""

    qpu_state: QPUState
    mode: Mode
    policy: Policy
    running: Candidate | None = None

    @property
    def busy(self) -> bool:
        """A job is on the QPU."""
        return self.running is not None


class Action(StrEnum):
    """What a decision asks the shell to do."""

    START = "start"
    WAIT = "wait"
    PREEMPT = "preempt"


@dataclass(frozen=True)
class Decision:
    """The core's answer: an action, the job it concerns, and why.

    Attributes:
        held: candidates that may not start now, each with its reason.
    """

    action: Action
    reason: str
    job: Candidate | None = None
    held: tuple[tuple[str, str], ...] = field(default=())


def order_key(policy: Policy, candidate: Candidate) -> tuple[int, int, datetime, str]:
    """Sort key: rank, then higher priority, then older, then job id."""
    rank = policy.classes[candidate.job_class].rank
    return (rank, -candidate.priority, candidate.enqueued_at, candidate.job_id)


def hold_reason(view: OwnerView, candidate: Candidate) -> str | None:
    """Why `candidate` may not start now whatever else happens, or None if it may."""
    job_class = view.policy.classes.get(candidate.job_class)
    if job_class is None:
        return f"held: class {candidate.job_class!r} is not in the policy"
    if view.mode not in job_class.modes:
        return f"held: {view.mode.value} mode does not run {candidate.job_class} jobs"
    return None


def validate_admission(
    policy: Policy, job_class: str, user: str | None, shots: int
) -> JobError | None:
    """Check that `user` may submit `shots` shots in `job_class` (ACL and class shot limit)."""
    cls = policy.classes.get(job_class)
    if cls is None:
        return JobError(
            code=ErrorCode.UNKNOWN_JOB_CLASS,
            message=f"job class {job_class!r} does not exist; classes: {', '.join(policy.class_names)}",
            field="job_class",
        )
    if cls.submitters and user not in cls.submitters:
        return JobError(
            code=ErrorCode.NOT_AUTHORISED,
            message=f"user {user!r} may not submit {job_class} jobs",
            field="job_class",
            details={"user": user, "job_class": job_class},
        )
    if cls.max_shots is not None and shots > cls.max_shots:
        return JobError(
            code=ErrorCode.TOO_MANY_SHOTS,
            message=f"{shots} shots exceed the {cls.max_shots}-shot limit of class {job_class}",
            field="shots",
            details={"shots": shots, "max_shots": cls.max_shots, "job_class": job_class},
        )
    return None


def preemption_reason(policy: Policy, running: Candidate, challenger: Candidate) -> str | None:
    """Why `challenger` may interrupt `running`, or None when it may not.

    Only along the policy's ``preempts`` edges, and never a job already preempted
    ``max_preemptions`` times (it runs to its end).
    """
    if running.job_class not in policy.classes[challenger.job_class].preempts:
        return None
    if running.preemptions >= policy.max_preemptions:
        return None
    return (
        f"preempting {running.job_id} ({running.job_class}) for {challenger.job_id} "
        f"({challenger.job_class}, priority {challenger.priority})"
    )


def decide(view: OwnerView, candidates: Sequence[Candidate], now: datetime) -> Decision:
    """Choose what the QPU does next.

    Args:
        view: QPU state, mode, policy and the running job.
        candidates: every job the owner could start (it never loses one by deciding).
        now: the current time (aging and windows are computed from it, never from a clock).

    Returns:
        START with the best eligible candidate; PREEMPT when it may interrupt the running job;
        otherwise WAIT, with the reason.
    """
    del now  # the class-rank policy does not age; fairness policies use it
    held = tuple(
        (c.job_id, reason) for c in candidates if (reason := hold_reason(view, c)) is not None
    )
    held_ids = {job_id for job_id, _ in held}
    eligible = sorted(
        (c for c in candidates if c.job_id not in held_ids), key=lambda c: order_key(view.policy, c)
    )
    if view.running is not None:
        if view.qpu_state is QPUState.RUNNING and eligible:
            reason = preemption_reason(view.policy, view.running, eligible[0])
            if reason is not None:
                return Decision(Action.PREEMPT, reason, job=eligible[0], held=held)
        return Decision(Action.WAIT, f"busy: {view.running.job_id}", held=held)
    if view.qpu_state not in DISPATCHING:
        return Decision(Action.WAIT, f"{view.qpu_state.value.lower()}: starting nothing", held=held)
    if not eligible:
        reason = held[0][1] if held else "no jobs"
        return Decision(Action.WAIT, reason, held=held)
    best = eligible[0]
    reason = (
        f"best of {len(eligible)}: class {best.job_class} (rank "
        f"{view.policy.classes[best.job_class].rank}), priority {best.priority}"
    )
    return Decision(Action.START, reason, job=best, held=held)
