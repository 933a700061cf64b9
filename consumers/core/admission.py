"""Admission (pure): whether a delivered job enters the backlog, and the admission plugins'
answers on a job that waits.

`arrival` turns a decoded delivery into events: a copy of a job already accepted from the same
user is dropped (and answered from the results the shell remembers); a job id of another user,
a refusal by the shell (`Arrival.problem`), by the policy (class ACL, shot limit) or by a backlog
limit (class, user, whole backlog; the limit named) or by its context (an allocation of another
user, none where one is required: `consumers.core.context`) is a `job.rejected` event (not
attached to the id when the id is another user's), an answer to the sender and a dead-lettered
delivery. A job naming an allocation the registry does not know yet is kept by the shell
(`AwaitAllocation`) for the policy's registration grace, then refused naming the allocation.
Otherwise `job.accepted` with the verified context, a `job.context_mismatch` when the client
said otherwise, then `job.admission` when a plugin holds the job, or its cancellation when its
Slurm allocation already ended. The plugins are called by the shell
(`consumers.plugins`), never here; their answers arrive as the `hold` of an `Arrival` or as a
`Readmitted` input for a held job asked again (`readmitted`).
"""

from __future__ import annotations

from datetime import datetime

from consumers.core import sessions
from consumers.core.budget_rules import budget_refusal
from consumers.core.context import Unregistered, mismatch, unregistered_error, verify
from consumers.core.inputs import Arrival, Readmitted
from consumers.core.limits import over_limit as _over_limit
from consumers.core.order import Waiting
from consumers.core.outcomes import (
    AwaitAllocation,
    DeadLetter,
    Effect,
    Reply,
    Steps,
    end_waiting,
    final_event,
)
from consumers.core.policy import validate_admission
from consumers.core.state import OwnerState
from schemas.context import ContextSource, VerifiedContext
from schemas.enums import ErrorCode, JobState
from schemas.envelope import Event
from schemas.events import AdmissionHold, ContextMismatch, JobAccepted, Refused, Topic, make_event
from schemas.jobs import JobError, JobReceipt, JobRequest
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
    if problem is not None:
        return _reject(given, problem, now)
    context = given.verified or verify(state, policy, job, given.user)
    if isinstance(context, Unregistered):
        if given.may_wait and given.waited_s < policy.accounts.registration_grace_s:
            return [], [AwaitAllocation(context.allocation)]
        return _reject(given, unregistered_error(context.allocation, given.waited_s), now)
    if isinstance(context, JobError):
        return _reject(given, context, now)
    spent = budget_refusal(state, policy, context.account, given.user, now)
    if spent is not None:
        return _reject(given, spent, now)
    opening = sessions.arrival(state, policy, job, given.user, context)
    if isinstance(opening, JobError):
        return _reject(given, opening, now)
    number = state.last_number + 1
    payload = JobAccepted(
        job=job,
        user=given.user,
        reply_to=given.reply_to,
        trace=given.trace,
        site_term=given.site_term,
        number=number,
        verified=context,
    )
    accepted = make_event(
        Topic.JOB_ACCEPTED, payload, job_id=job.job_id, job_class=job.job_class, user=given.user
    )
    events = [
        *opening,
        accepted,
        *_mismatch_events(job, given.user, context),
        *sessions.stranger(state, job, given.user, context),
    ]
    receipt = _receipt(given, number)
    allocation = context.allocation
    if allocation is not None and (
        context.source is ContextSource.ENDED or allocation in state.ended_allocations
    ):
        waiting = Waiting.of(payload, state.epoch, now)
        error = JobError(
            code=ErrorCode.ALLOCATION_ENDED, message=f"Slurm allocation {allocation} ended"
        )
        ended, effects = end_waiting(waiting, JobState.CANCELED, error, now, given.reply_to)
        return [*events, *ended], [*receipt, *effects]
    if given.hold is not None:
        events.append(admission_event(job.job_id, job.job_class, given.user, given.hold))
    return events, receipt


def _receipt(given: Arrival, number: int) -> list[Effect]:
    """The `JobReceipt` its submitter asked for (`JobRequest.receipt`), if any."""
    if not given.job.receipt or not given.reply_to:
        return []
    return [Reply(given.reply_to, JobReceipt(job_id=given.job.job_id, number=number), "")]


def _mismatch_events(job: JobRequest, user: str, verified: VerifiedContext) -> list[Event]:
    """A ``job.context_mismatch`` when what the client said differs from what was verified."""
    differs = mismatch(job, verified)
    if not differs or job.slurm is None:
        return []
    claimed = job.slurm.model_dump(mode="json", exclude_none=True)
    said = ", ".join(f"{name} {claimed.get(name)!s}" for name in differs)
    return [
        make_event(
            Topic.JOB_CONTEXT_MISMATCH,
            ContextMismatch(claimed=claimed, verified=verified, fields=differs),
            job_id=job.job_id,
            job_class=job.job_class,
            user=user,
            reason=f"the client said {said}; the owner uses allocation {verified.allocation}, "
            f"account {verified.account}, end {_iso(verified.allocation_end)} "
            f"({verified.source.value})",
        )
    ]


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else "none"


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
