"""Admission (pure): whether a delivered job enters the backlog, and the admission plugins'
answers on a job that waits.

`arrival` turns a decoded delivery into events: a copy of a job already accepted from the same
user is dropped (and answered from the results the shell remembers); a job id of another user,
a refusal by the shell (`Arrival.problem`), by the policy (class ACL, shot limit) or by a backlog
limit (class, user, whole backlog; the limit named) is a `job.rejected` event (not attached to
the id when the id is another user's), an answer to the sender and a dead-lettered delivery;
otherwise `job.accepted`, followed by `job.admission` when a plugin holds the job, or by its
cancellation when its Slurm allocation already ended. The plugins are called by the shell
(`consumers.plugins`), never here; their answers arrive as the `hold` of an `Arrival` or as a
`Readmitted` input for a held job asked again (`readmitted`).
"""

from __future__ import annotations

from datetime import datetime

from consumers.core import sessions
from consumers.core.inputs import Arrival, Readmitted
from consumers.core.order import Waiting
from consumers.core.outcomes import DeadLetter, Effect, Reply, Steps, end_waiting, final_event
from consumers.core.policy import validate_admission
from consumers.core.state import OwnerState
from schemas.enums import ErrorCode, JobState
from schemas.events import AdmissionHold, JobAccepted, Refused, Topic, make_event
from schemas.messages import Event, JobError, JobReceipt
from schemas.policy import Policy


def arrival(state: OwnerState, policy: Policy, given: Arrival, now: datetime) -> Steps:
    """A job delivery: dropped as a copy, refused, or accepted (and held, or ended at once)."""
    job = given.job
    owner = state.owner_of(job.job_id)
    if owner is not None:
        if owner != given.user:
            error = JobError(
                code=ErrorCode.DUPLICATE_JOB_ID,
                message=f"job id {job.job_id} belongs to another user; submit with a new id",
                field="job_id",
            )
            return _reject(given, error, now, attach=False)
        duplicate = make_event(
            Topic.JOB_DUPLICATE,
            job_id=job.job_id,
            job_class=job.job_class,
            user=given.user,
            reason="already accepted: the copy is dropped",
        )
        number = state.numbers.get(job.job_id)
        receipt = _receipt(given, number) if number is not None else []
        return [duplicate], [*receipt, Reply(given.reply_to, None, job.job_id)]
    problem = (
        given.problem
        or validate_admission(policy, job.job_class, given.user, job.shots)
        or _over_limit(state, policy, job.job_class, given.user)
    )
    opening = problem or sessions.arrival(state, policy, job, given.user)
    if isinstance(opening, JobError):
        return _reject(given, opening, now)
    allocation = job.slurm.job_id if job.slurm else None
    number = state.last_number + 1
    accepted = make_event(
        Topic.JOB_ACCEPTED,
        JobAccepted(
            job=job,
            user=given.user,
            reply_to=given.reply_to,
            trace=given.trace,
            site_term=given.site_term,
            number=number,
        ),
        job_id=job.job_id,
        job_class=job.job_class,
        user=given.user,
    )
    receipt = _receipt(given, number)
    if allocation is not None and allocation in state.ended_allocations:
        waiting = Waiting.of(JobAccepted(job=job, user=given.user), state.epoch, now)
        error = JobError(
            code=ErrorCode.ALLOCATION_ENDED, message=f"Slurm allocation {allocation} ended"
        )
        events, effects = end_waiting(waiting, JobState.CANCELED, error, now, given.reply_to)
        return [*opening, accepted, *events], [*receipt, *effects]
    if given.hold is not None:
        hold = admission_event(job.job_id, job.job_class, given.user, given.hold)
        return [*opening, accepted, hold], receipt
    return [*opening, accepted], receipt


def _receipt(given: Arrival, number: int) -> list[Effect]:
    """The `JobReceipt` its submitter asked for (`JobRequest.receipt`), if any."""
    if not given.job.receipt or not given.reply_to:
        return []
    return [Reply(given.reply_to, JobReceipt(job_id=given.job.job_id, number=number), "")]


def _reject(given: Arrival, error: JobError, now: datetime, *, attach: bool = True) -> Steps:
    """Refuse a delivery: log it (attached to its job id only if that id is the sender's),
    answer the sender, dead-letter the message."""
    job = given.job
    facts = Waiting(
        job.job_id,
        job.job_class,
        job.priority,
        job.submitted_at,
        job.shots,
        given.user,
        trace=dict(given.trace),
        accepted_at=now,
    )
    event, result = final_event(facts, JobState.REJECTED, error, now)
    if not attach:  # a refusal that names no job: the id is another user's
        event = make_event(
            Topic.JOB_REJECTED,
            Refused(code=error.code.value, message_id=job.job_id),
            job_class=job.job_class,
            user=given.user,
            reason=error.message,
        )
    answer = Reply(given.reply_to, result, job.job_id, facts if attach else None)
    effects: list[Effect] = [answer, DeadLetter(error)]
    return [event], effects


def _over_limit(state: OwnerState, policy: Policy, job_class: str, user: str) -> JobError | None:
    """The backlog limit a new job would break, named, or None."""
    index = state.index
    limits = (
        (policy.classes[job_class].max_waiting, index.per_class[job_class], f"class {job_class}"),
        (policy.max_waiting_per_user, index.per_user[user], f"user {user}"),
        (policy.max_waiting_total, len(state.waiting), "the whole backlog"),
    )
    for limit, waiting, what in limits:
        if limit is not None and waiting >= limit:
            return JobError(
                code=ErrorCode.BACKLOG_LIMIT,
                message=f"backlog limit of {what} reached: {waiting} of {limit} jobs waiting",
                retryable=True,
                details={"limit": limit, "waiting": waiting, "scope": what},
            )
    return None


def admission_event(job_id: str, job_class: str, user: str, hold: str | None) -> Event:
    """The `job.admission` event: `hold` says why the job is held (None: the hold is lifted)."""
    return make_event(
        Topic.JOB_ADMISSION,
        AdmissionHold(hold=hold),
        job_id=job_id,
        job_class=job_class,
        user=user,
        reason=hold or "admission: the hold is lifted",
    )


def readmitted(state: OwnerState, given: Readmitted, now: datetime) -> Steps:
    """A held job's new admission answer: refused (it ends), let go, or held for another reason."""
    job = state.waiting.get(given.job_id)
    if job is None or job.admission_hold is None:
        return [], []
    if given.refusal is not None:
        return end_waiting(job, JobState.REJECTED, given.refusal, now)
    if given.hold == job.admission_hold:
        return [], []
    return [admission_event(job.job_id, job.job_class, job.user, given.hold)], []
