"""The scheduling decision, as a pure function of the owner's view, the candidates and `now`.

`decide_indexed` (the owner's) and `decide` (the reference: sort every candidate) answer one
question each time something changes (a job arrives, the QPU frees, an
operator acts, a timer fires): what does the QPU do next? Candidates are ordered by their
`OrderKey` (`consumers.core.order_key`: class rank, class usage per weight, session grace, site
term, effective priority, account then user usage, age), the same key `qsched queue --explain`
shows.

A candidate that may not start now is held with a reason, never dropped: its submitter or an
operator holds it (`qsched hold`), its class is not allowed in the mode, it needs a later
calibration epoch, its Slurm allocation ends before it could finish, an admission plugin holds
it, a retry waits out its backoff, or it would outlive the calibration window (then, if nothing
fits, the decision says calibration is due). A better candidate may preempt the running job along the policy's
``preempts`` edges, at most ``max_preemptions`` times per job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from consumers.core.budget_rules import applying, budget_hold
from consumers.core.machine import DISPATCHING
from consumers.core.order import OrderIndex
from consumers.core.order_key import (
    OrderKey,
    class_key,
    effective_priority,
    fifo_key,
    is_fifo,
    key_in_class,
    order_key,
)
from consumers.core.owner_view import Candidate, OwnerView
from consumers.core.reservations import is_member, reservation_hold
from schemas.enums import ErrorCode, Placement, QPUState
from schemas.jobs import JobError
from schemas.policy import Policy

CALIBRATION_WINDOW = "calibration window"


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
        calibration_due: nothing fits in what is left of the calibration window.
    """

    action: Action
    reason: str
    job: Candidate | None = None
    held: tuple[tuple[str, str], ...] = field(default=())
    calibration_due: bool = False


def estimated_duration_s(
    policy: Policy, shots: int, measured: tuple[float, float] | None = None
) -> float:
    """How long a job of `shots` shots is expected to hold the QPU: by the policy's
    `shot_rate_hz` and `job_overhead_s`, or by `measured`, the (overhead per run, seconds per
    shot) the QPU's recent runs showed (`consumers.core.shotrate.ShotRate.costs`; ETAs)."""
    if measured is not None:
        overhead_s, per_shot_s = measured
        return overhead_s + shots * per_shot_s
    return shots / policy.shot_rate_hz + policy.job_overhead_s


def class_hold(view: OwnerView, job_class: str) -> str | None:
    """Why no job of `job_class` may start on the QPU now (mode, placement, calibration), or None."""
    policy = view.policy.classes.get(job_class)
    if policy is None:
        return f"held: class {job_class!r} is not in the policy (put it back, or cancel the job)"
    if policy.placement_in(view.mode) is Placement.EMULATOR:
        return f"held: {view.mode.value} mode runs {job_class} jobs on emulator lanes only"
    if view.mode not in policy.modes:
        return f"held: {view.mode.value} mode does not run {job_class} jobs"
    if view.qpu_state is QPUState.CALIBRATING and not policy.calibrates:
        return "held: the QPU is being calibrated"
    return None


def hold_reason(view: OwnerView, candidate: Candidate, now: datetime) -> str | None:
    """Why `candidate` may not start now, or None if it may."""
    return class_hold(view, candidate.job_class) or job_hold(view, candidate, now)


def job_hold(view: OwnerView, candidate: Candidate, now: datetime) -> str | None:
    """Why this job, in particular, may not start now (hold, epoch, allocation, window), or None."""
    if candidate.held_by is not None:
        kind = "an operator" if candidate.operator_hold else "a user"
        return f"held: {kind} hold by {candidate.held_by} (qsched release)"
    policy = view.policy
    job_class = policy.classes[candidate.job_class]
    if candidate.allocation is not None and candidate.allocation in view.ended_allocations:
        return f"held: allocation {candidate.allocation} has ended"
    if candidate.admission_hold is not None:
        return f"held: {candidate.admission_hold}"
    if candidate.not_before is not None and candidate.not_before > now:
        wait_s = (candidate.not_before - now).total_seconds()
        return f"held: retried after a backend failure, starts again in {wait_s:.0f} s"
    epoch = view.calibration.epoch
    if candidate.min_epoch is not None and candidate.min_epoch > epoch:
        return f"held: needs calibration epoch {candidate.min_epoch}, the QPU is at {epoch}"
    needs_s = estimated_duration_s(policy, candidate.remaining_shots)
    over_budget = budget_hold(view.budgets, candidate, needs_s) if view.budgets else None
    if over_budget is not None:
        return over_budget
    reserved = None
    if view.reservations and not job_class.calibrates:  # calibration runs in any window
        reserved = reservation_hold(view.reservations, candidate, now, needs_s)
    if reserved is not None:
        return reserved
    if candidate.allocation_end is not None:
        left_s = (candidate.allocation_end - now).total_seconds()
        if left_s < needs_s:
            return (
                f"skipped: allocation {candidate.allocation} ends in {max(left_s, 0):.0f} s, "
                f"the job needs about {needs_s:.0f} s"
            )
    valid_until = view.calibration.valid_until
    if valid_until is not None and not job_class.calibrates:
        over_s = needs_s - (valid_until - now).total_seconds()
        if over_s > 0:
            return f"skipped: would outlive the {CALIBRATION_WINDOW} by {over_s:.0f} s"
    return None


ClassHold = Callable[[OwnerView, str], str | None]
JobHold = Callable[[OwnerView, Candidate, datetime], str | None]


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


def best_indexed(
    view: OwnerView,
    index: OrderIndex,
    now: datetime,
    holds: tuple[ClassHold, JobHold] = (class_hold, job_hold),
) -> tuple[Candidate | None, bool]:
    """The best startable waiting job, looking at one job per cohort (see `consumers.core.order`).

    A cohort's head bounds the cohort (nothing behind it orders earlier, grace aside), so a cohort
    whose head cannot beat the best so far is skipped without checking holds. `holds` say what
    may start: the QPU's (default) or an emulator lane's (`lane_class_hold`, `lane_job_hold`).

    Returns:
        The job (None if none may start) and whether a job was skipped only because it would
        outlive the calibration window (calibration is then due if nothing else may start).
    """
    window_blocked = False
    step_s = view.policy.aging_step_s
    class_held, job_held = holds
    for job_class in sorted(index.cohorts, key=lambda c: class_key(view, c)):
        if class_held(view, job_class) is not None:
            continue
        rank, share, _ = class_key(view, job_class)
        fifo = is_fifo(view, job_class)
        best: Candidate | None = None
        best_key: OrderKey | None = None
        for session in view.sessions_in_grace:
            for job in index.session_jobs(session):
                if job.job_class == job_class and job_held(view, job, now) is None:
                    key = key_in_class(view, job, now, rank, share)
                    if best_key is None or key < best_key:
                        best, best_key = job, key
        calibrates = view.policy.classes[job_class].calibrates
        for levels in index.cohorts[job_class].values():
            user_share: tuple[float, float] | None = None
            if job_held is job_hold and _all_held(
                view, next(iter(levels.values()))[0][2], now, calibrates
            ):
                continue  # no job of this submitter may start, whatever its size: not walked
            for (site_term, priority), cohort in levels.items():
                head: Candidate = cohort[0][2]
                if user_share is None:
                    user_share = (
                        view.account_usage.get(head.account_key, 0.0),
                        view.usage.get(head.user_key, 0.0),
                    )
                if best_key is not None:
                    # The head's key outside any grace bounds every job of the cohort: skip the
                    # cohort when even that orders after the best so far.
                    waited_s = max((now - head.queued_at).total_seconds(), 0.0)
                    aged = priority + int(waited_s // step_s)
                    bound = (
                        fifo_key(rank, share, head.queued_at, "")
                        if fifo
                        else OrderKey(
                            rank, share, True, -site_term, -aged, *user_share, head.queued_at, ""
                        )
                    )
                    if bound > best_key:
                        continue
                entries = (entry[2] for entry in cohort)
                found, blocked = _first_startable(view, entries, now, job_held)
                window_blocked = window_blocked or blocked
                if found is None:
                    continue
                key = key_in_class(view, found, now, rank, share)
                if best_key is None or key < best_key:
                    best, best_key = found, key
        if best is not None:
            return best, window_blocked
    return None, window_blocked


def _all_held(view: OwnerView, job: Candidate, now: datetime, calibrates: bool) -> bool:
    """Whether every QPU job of `job`'s submitter in its class is held now whatever its size:
    their budget is spent, or an open reservation is for others (then their cohorts are skipped
    instead of walked job by job)."""
    if view.budgets and any(s.left_s <= 0 for s in applying(view.budgets, job.account, job.user)):
        return True
    return not calibrates and any(
        r.start <= now < r.end and (r.accounts or r.users) and not is_member(r, job)
        for r in view.reservations
    )


def _first_startable(
    view: OwnerView, cohort: Iterator[Candidate], now: datetime, job_held: JobHold
) -> tuple[Candidate | None, bool]:
    """A cohort's first job that may start, and whether one was skipped for the window."""
    blocked = False
    for job in cohort:
        reason = job_held(view, job, now)
        if reason is None:
            return job, blocked
        blocked = blocked or CALIBRATION_WINDOW in reason
    return None, blocked


def decide(view: OwnerView, candidates: Sequence[Candidate], now: datetime) -> Decision:
    """Choose what the QPU does next by sorting every candidate (the reference order).

    The owner uses `decide_indexed`, which must always agree with this (a property test checks).

    Args:
        view: QPU state, mode, policy, running job, calibration, usage, sessions, allocations.
        candidates: every job the owner could start (it never loses one by deciding).
        now: the current time (aging and windows are computed from it, never from a clock).

    Returns:
        START with the best eligible candidate; PREEMPT when it may interrupt the running job;
        otherwise WAIT, with the reason.
    """
    held = tuple(
        (c.job_id, reason) for c in candidates if (reason := hold_reason(view, c, now)) is not None
    )
    held_ids = {job_id for job_id, _ in held}
    eligible = sorted(
        (c for c in candidates if c.job_id not in held_ids), key=lambda c: order_key(view, c, now)
    )
    window_blocked = any(CALIBRATION_WINDOW in reason for _, reason in held)
    return _conclude(view, eligible[0] if eligible else None, window_blocked, now, held)


def decide_indexed(view: OwnerView, index: OrderIndex, now: datetime) -> Decision:
    """Choose what the QPU does next from the order index (sub-millisecond at any depth)."""
    if view.running is not None and view.qpu_state is not QPUState.RUNNING:
        return Decision(Action.WAIT, f"busy: {view.running.job_id}")
    if view.running is None and view.qpu_state not in DISPATCHING:
        return Decision(Action.WAIT, f"{view.qpu_state.value.lower()}: starting nothing")
    best, window_blocked = best_indexed(view, index, now)
    return _conclude(view, best, window_blocked, now)


def _conclude(
    view: OwnerView,
    best: Candidate | None,
    window_blocked: bool,
    now: datetime,
    held: tuple[tuple[str, str], ...] = (),
) -> Decision:
    if view.running is not None:
        if view.qpu_state is QPUState.RUNNING and best is not None:
            reason = preemption_reason(view.policy, view.running, best)
            if reason is not None:
                return Decision(Action.PREEMPT, reason, job=best, held=held)
        return Decision(Action.WAIT, f"busy: {view.running.job_id}", held=held)
    if view.qpu_state not in DISPATCHING:
        return Decision(Action.WAIT, f"{view.qpu_state.value.lower()}: starting nothing", held=held)
    if best is None:
        if window_blocked:
            return Decision(
                Action.WAIT,
                "calibration due: no waiting job fits the calibration window",
                held=held,
                calibration_due=True,
            )
        return Decision(Action.WAIT, held[0][1] if held else "no jobs", held=held)
    reason = (
        f"best: class {best.job_class} (rank {view.policy.classes[best.job_class].rank}), "
        f"priority {best.priority} (effective {effective_priority(view.policy, best, now)})"
    )
    return Decision(Action.START, reason, job=best, held=held)
