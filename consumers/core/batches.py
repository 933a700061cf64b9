"""Batches (pure): a batch's arrival, which creates a batch or adds jobs to an open one.

Theory of operation. A `BatchArrival` is one `BatchRequest` delivery with the shell's verdict on
its sequence and every job's variables and shots (`problem`). It creates a batch (its sequence,
stored once in `batch.created`, then one `job.accepted` per job carrying only its runs and
variables) or adds jobs to an open one; it is accepted or refused whole: an invalid sequence or
variables, an unknown or closed batch, another user's batch, or more jobs than a backlog limit
allows refuse every job of the message (`job.rejected` each, a REJECTED result each, and a
`batch.rejected` naming the batch), and nothing is created. A copy of a message already taken
(a redelivery) is dropped. A batch is a session: its jobs carry ``session_id`` = the batch's
session (its id unless the submitter named one), opened, checked and bounded by the same path
as any job's session (`consumers.core.sessions.arrival`: implicitly by the batch's first jobs,
owned by their verified user), so the owner's session grace keeps an open batch's iterations
together and a session that ended refuses the batch's new jobs.

The commands about a batch once it exists (``batch-show``, ``batch-close``, ``batch-cancel``,
``batch-retry``, ``batch-results``) are `consumers.core.batch_commands`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from consumers.core import sessions
from consumers.core.context import Unregistered, unregistered_error, verify
from consumers.core.limits import over_limit
from consumers.core.order import Waiting
from consumers.core.outcomes import DeadLetter, Effect, Reply, Steps, final_event
from consumers.core.policy import validate_admission
from consumers.core.state import OwnerState
from consumers.core.state_data import Batch
from schemas.batches import BatchRequest
from schemas.enums import ErrorCode, JobState
from schemas.envelope import Event
from schemas.events import BatchCreated, JobAccepted, Topic, make_event
from schemas.events import Refused as RefusedPayload
from schemas.jobs import JobError, JobRequest, JobResult, Timings
from schemas.policy import Policy


@dataclass(frozen=True)
class BatchArrival:
    """A decoded `BatchRequest` with what the shell learned: the sequence's digest, declared
    variables, atom order and basis (a new batch), and the first problem with its sequence or
    any job's variables or shots (`problem`)."""

    request: BatchRequest
    user: str
    reply_to: str | None = None
    trace: dict[str, str] = field(default_factory=dict)
    problem: JobError | None = None
    digest: str = ""
    variables: dict[str, tuple[str, int]] = field(default_factory=dict)
    atom_order: list[str] = field(default_factory=list)
    basis: str | None = None


def batch_arrival(state: OwnerState, policy: Policy, given: BatchArrival, now: datetime) -> Steps:
    """A batch delivery: dropped as a copy, refused whole, or accepted whole."""
    request = given.request
    batch = state.batches.get(request.batch_id)
    creating = request.sequence is not None
    known = [job.job_id for job in request.jobs if job.job_id in state.owners]
    if (
        creating
        and batch is not None
        and batch.user == given.user
        and (not request.jobs or len(known) == len(request.jobs))
    ):
        return [], []  # a copy of a batch already taken (redelivered)
    copied = not creating and request.jobs and len(known) == len(request.jobs)
    if copied and all(state.owners[j] == given.user for j in known):
        return [], []  # a copy of an addition already taken
    problem = _refusal(state, policy, given, batch, known)
    session = request.session_id or (batch.session_id if batch is not None else None)
    session = session or request.batch_id
    jobs = _job_requests(request, session)
    context = None
    if problem is None and jobs:  # the owner's verified context, never the client's word
        verified = verify(state, policy, jobs[0], given.user)
        if isinstance(verified, Unregistered):  # a batch does not wait for its allocation
            problem = unregistered_error(verified.allocation, 0.0)
        elif isinstance(verified, JobError):
            problem = verified
        else:
            context = verified
    opening = problem or (
        sessions.arrival(state, policy, jobs[0], given.user, context)
        if jobs and context is not None
        else []
    )
    if isinstance(opening, JobError):
        return _refuse(given, opening, now)
    events: list[Event] = list(opening)  # a session the batch opens, as any job would
    if creating:
        assert request.sequence is not None
        created = BatchCreated(
            batch_id=request.batch_id,
            user=given.user,
            job_class=request.job_class,
            sequence=request.sequence,
            digest=given.digest,
            variables=given.variables,
            open=request.open,
            session_id=session,
            reply_to=given.reply_to,
            atom_order=given.atom_order,
            basis=given.basis,
        )
        events.append(
            make_event(
                Topic.BATCH_CREATED,
                created,
                job_class=request.job_class,
                user=given.user,
                reason=f"{len(request.jobs)} job(s){', open' if request.open else ''}",
            )
        )
    for number, job in enumerate(jobs, start=state.last_number + 1):
        accepted = JobAccepted(
            job=job,
            user=given.user,
            reply_to=given.reply_to,
            trace=given.trace,
            number=number,
            verified=context,
        )
        events.append(
            make_event(
                Topic.JOB_ACCEPTED,
                accepted,
                job_id=job.job_id,
                job_class=job.job_class,
                user=given.user,
            )
        )
    return events, []


def _job_requests(request: BatchRequest, session: str) -> list[JobRequest]:
    """The batch's jobs as job requests without a sequence (their batch has it)."""
    return [
        JobRequest(
            job_id=job.job_id,
            job_class=request.job_class,
            priority=request.priority,
            shots=job.shots,
            sequence="",
            batch_id=request.batch_id,
            variables=job.variables,
            session_id=session,
            slurm=request.slurm,
            submitted_at=request.submitted_at,
            deadline=request.deadline,
            max_runtime_s=request.max_runtime_s,
            min_epoch=request.min_epoch,
            allow_device_switch=request.allow_device_switch,
            require_qpu=request.require_qpu,
        )
        for job in request.jobs
    ]


def _refusal(
    state: OwnerState,
    policy: Policy,
    given: BatchArrival,
    batch: Batch | None,
    known: list[str],
) -> JobError | None:
    """Why the whole message is refused, or None."""
    request = given.request
    batch_id = request.batch_id
    if request.sequence is not None and batch is not None:
        return JobError(
            code=ErrorCode.DUPLICATE_JOB_ID,
            message=f"batch id {batch_id} is taken; create the batch with a new id",
            field="batch_id",
        )
    if request.sequence is None:
        if batch is None:
            return JobError(
                code=ErrorCode.UNKNOWN_BATCH,
                message=f"no batch {batch_id} is known to the owner",
                field="batch_id",
            )
        if batch.user != given.user:
            return JobError(
                code=ErrorCode.NOT_AUTHORISED,
                message=f"batch {batch_id} is another user's",
                field="batch_id",
            )
        if not batch.open:
            return JobError(
                code=ErrorCode.BATCH_CLOSED,
                message=f"batch {batch_id} is closed: no job may be added to it",
                field="batch_id",
            )
        if batch.job_class != request.job_class:
            return JobError(
                code=ErrorCode.INVALID_SCHEMA,
                message=f"batch {batch_id} is of class {batch.job_class}, not {request.job_class}",
                field="job_class",
            )
    if known:
        return JobError(
            code=ErrorCode.DUPLICATE_JOB_ID,
            message=f"job id {known[0]} is taken; submit with new ids",
            field="job_id",
        )
    if given.problem is not None:
        return given.problem
    allocation = request.slurm.job_id if request.slurm else None
    if allocation is not None and allocation in state.ended_allocations:
        return JobError(
            code=ErrorCode.ALLOCATION_ENDED, message=f"Slurm allocation {allocation} ended"
        )
    shots = max((job.shots for job in request.jobs), default=1)
    return validate_admission(policy, request.job_class, given.user, shots) or (
        over_limit(state, policy, request.job_class, given.user, len(request.jobs))
        if request.jobs
        else None
    )


def _refuse(given: BatchArrival, error: JobError, now: datetime) -> Steps:
    """Refuse every job of the message (each logged and answered), and the batch itself."""
    request = given.request
    if error.code not in (ErrorCode.UNKNOWN_BATCH, ErrorCode.BATCH_CLOSED):
        error = error.model_copy(update={"message": f"batch {request.batch_id}: {error.message}"})
    attach = error.code is not ErrorCode.DUPLICATE_JOB_ID
    events: list[Event] = [
        make_event(
            Topic.BATCH_REJECTED,
            RefusedPayload(code=error.code.value, batch_id=request.batch_id),
            job_class=request.job_class,
            user=given.user,
            reason=error.message,
        )
    ]
    effects: list[Effect] = [DeadLetter(error)]
    for job in request.jobs:
        waiting = Waiting(
            job.job_id,
            request.job_class,
            request.priority,
            request.submitted_at,
            job.shots,
            given.user,
        )
        event, result = final_event(waiting, JobState.REJECTED, error, now)
        if attach:
            events.append(event)
        effects.append(Reply(given.reply_to, result, job.job_id))
    if request.sequence is not None:  # the creator waits on the batch id too
        effects.append(Reply(given.reply_to, _batch_result(request, error, now), request.batch_id))
    return events, effects


def _batch_result(request: BatchRequest, error: JobError, now: datetime) -> JobResult:
    return JobResult(
        job_id=request.batch_id,
        state=JobState.REJECTED,
        job_class=request.job_class,
        shots=0,
        error=error,
        timings=Timings(queued_at=now, ended_at=now),
    )
