"""`step`: every input to the owner becomes events (state changes) and effects (I/O to do).

Theory of operation. The shell turns what happens (a delivery, a backend report, a command, a
timer, "the QPU may be free") into an `Input` and calls `step(state, policy, input, now, ctx)`.
`step` reads the state and returns the events to publish and the effects to carry out; it never
changes the state. The shell publishes the events (confirmed), folds each into the state with
`OwnerState.apply`, then carries out the effects (start or stop a run, reply, dead-letter).
`Dispatch` is an input like the others: after any change the shell steps it once more, and the
decision is taken on the state as the previous events left it.
"""

from __future__ import annotations

from datetime import datetime

from consumers.core.admission import admission_event, readmitted
from consumers.core.commands import Command, run_command
from consumers.core.inputs import (
    Arrival,
    Context,
    Dispatch,
    Finished,
    Input,
    Invalidated,
    LaneDispatch,
    Note,
    Operational,
    Progress,
    Readmitted,
    Recovered,
    Tick,
)
from consumers.core.lanes import lane_dispatch, requeue_lanes
from consumers.core.order import Waiting
from consumers.core.outcomes import (
    DeadLetter,
    Effect,
    Reply,
    StartRun,
    Steps,
    StopRun,
    end_waiting,
    final_event,
    merge_counts,
    retrying_event,
    stopping_event,
)
from consumers.core.policy import Action, decide_indexed, validate_admission
from consumers.core.state import OwnerState
from consumers.core.state_data import Run
from consumers.core.view import view_of
from schemas.enums import ErrorCode, JobState, QPUState
from schemas.events import (
    CalibrationEpoch,
    JobAccepted,
    JobBack,
    JobPreempting,
    JobProgress,
    JobStarted,
    QPUStatus,
    Refused,
    Topic,
    make_event,
)
from schemas.messages import Event, JobError
from schemas.messages import JobProgress as ProgressMessage
from schemas.policy import Policy

__all__ = [
    "Arrival",
    "Command",
    "Context",
    "Dispatch",
    "Effect",
    "Finished",
    "Input",
    "Invalidated",
    "LaneDispatch",
    "Note",
    "Operational",
    "Progress",
    "Readmitted",
    "Recovered",
    "Tick",
    "step",
]


def step(state: OwnerState, policy: Policy, given: Input, now: datetime, ctx: Context) -> Steps:
    """The events and effects of one input (pure; `state` is not changed).

    Args:
        state: the owner's state as the log has it.
        policy: the policy in force.
        given: what happened.
        now: the current time (never read from a clock here).
        ctx: the owner's id and backend name.

    Returns:
        Events to publish and apply, in order, then effects to carry out.
    """
    match given:
        case Arrival():
            return _arrival(state, policy, given, now)
        case Progress():
            return _progress(state, given)
        case Finished():
            return _finished(state, policy, given, now, ctx)
        case Operational():
            topic = Topic.QPU_UP if given.up else Topic.QPU_DOWN
            return [make_event(topic, QPUStatus(up=given.up), reason=given.reason)], []
        case Note():
            return [make_event(Topic.JOB_NOTE, job_id=given.job_id, reason=given.message)], []
        case Tick():
            return _tick(state, policy, now)
        case Dispatch():
            return _dispatch(state, policy, now, ctx)
        case Invalidated():
            job = state.waiting.get(given.job_id)
            if job is None:
                return [], []
            return end_waiting(job, JobState.REJECTED, given.problem, now)
        case Readmitted():
            return readmitted(state, given, now)
        case LaneDispatch():
            return lane_dispatch(state, policy, given, now)
        case Recovered():
            return _recovered(state, ctx)
        case Command():
            return run_command(state, policy, given, now, ctx.owner_id, ctx.backend)
    raise TypeError(f"not an input: {given!r}")


def _reject(given: Arrival, error: JobError, now: datetime, *, attach: bool = True) -> Steps:
    """Refuse a delivery: log it (attached to its job id only if that id is the sender's),
    answer the sender, dead-letter the message."""
    job = given.job
    event, result = final_event(
        Waiting(
            job.job_id,
            job.job_class,
            job.priority,
            job.submitted_at,
            job.shots,
            given.user,
        ),
        JobState.REJECTED,
        error,
        now,
    )
    if not attach:
        unattached = Refused(code=error.code.value, message_id=job.job_id)
        event = event.model_copy(
            update={"job_id": None, "result": None, "data": unattached.model_dump(mode="json")}
        )
    effects: list[Effect] = [Reply(given.reply_to, result, job.job_id), DeadLetter(error)]
    return [event], effects


def _arrival(state: OwnerState, policy: Policy, given: Arrival, now: datetime) -> Steps:
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
        return [duplicate], [Reply(given.reply_to, None, job.job_id)]
    problem = (
        given.problem
        or validate_admission(policy, job.job_class, given.user, job.shots)
        or _over_limit(state, policy, job.job_class, given.user)
    )
    if problem is not None:
        return _reject(given, problem, now)
    allocation = job.slurm.job_id if job.slurm else None
    accepted = make_event(
        Topic.JOB_ACCEPTED,
        JobAccepted(
            job=job,
            user=given.user,
            reply_to=given.reply_to,
            trace=given.trace,
            site_term=given.site_term,
        ),
        job_id=job.job_id,
        job_class=job.job_class,
        user=given.user,
    )
    if allocation is not None and allocation in state.ended_allocations:
        waiting = Waiting.of(JobAccepted(job=job, user=given.user), state.epoch, now)
        error = JobError(
            code=ErrorCode.ALLOCATION_ENDED, message=f"Slurm allocation {allocation} ended"
        )
        events, effects = end_waiting(waiting, JobState.CANCELED, error, now, given.reply_to)
        return [accepted, *events], effects
    if given.hold is not None:
        return [accepted, admission_event(job.job_id, job.job_class, given.user, given.hold)], []
    return [accepted], []


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


def _progress(state: OwnerState, given: Progress) -> Steps:
    run = state.run_of(given.job_id)
    if run is None:
        return [], []
    counts = merge_counts(run.job.prior_counts, given.counts)
    shots_done = min(sum(counts.values()), run.job.shots)
    event = make_event(
        Topic.JOB_PROGRESS,
        JobProgress(shots_done=shots_done, counts=counts),
        job_id=run.job.job_id,
        job_class=run.job.job_class,
    )
    message = ProgressMessage(
        job_id=run.job.job_id, shots=run.job.shots, shots_done=shots_done, counts=counts
    )
    return [event], [Reply(run.job.reply_to, message, run.job.job_id)]


def _finished(
    state: OwnerState, policy: Policy, given: Finished, now: datetime, ctx: Context
) -> Steps:
    run = state.run_of(given.job_id)
    if run is None:
        return [], []
    counts = merge_counts(run.job.prior_counts, given.counts)
    execution_s = max((now - run.started_at).total_seconds(), 0.0)
    if given.canceled and run.stop_error is None and run.restart:
        return [_restarted(run, counts, execution_s)], []
    if given.canceled and run.stop_error is None and run.preempting is not None:
        shots = sum(counts.values())
        back = JobBack(
            counts=counts,
            shots_done=shots,
            shots=run.job.shots,
            execution_s=execution_s,
            preempted=True,
        )
        event = make_event(
            Topic.JOB_PREEMPTED,
            back,
            job_id=run.job.job_id,
            job_class=run.job.job_class,
            user=run.job.user,
            reason=f"{run.preempting}; back in the backlog after {shots} of {run.job.shots} shots",
        )
        return [event], []
    error: JobError | None
    if given.canceled:
        final = run.stop_state or JobState.CANCELED
        error = run.stop_error or JobError(code=ErrorCode.CANCELED_BY_OPERATOR, message="canceled")
    elif given.error is not None:
        if given.error.retryable and run.job.failures + 1 < policy.retry.attempts:
            return [retrying_event(run, policy, given.error, counts, execution_s, now)], []
        final, error = JobState.ERROR, given.error
    else:
        final, error = JobState.DONE, None
    backend = run.backend if run.lane is not None else ctx.backend
    event, result = final_event(run.job, final, error, now, counts=counts, run=run, backend=backend)
    return [event], [Reply(run.job.reply_to, result, run.job.job_id)]


def _restarted(run: Run, counts: dict[str, int], execution_s: float) -> Event:
    """A requeued run stopped: the job waits again, its counts dropped (it runs from shot 1)."""
    back = JobBack(shots=run.job.shots, execution_s=execution_s)
    return make_event(
        Topic.JOB_REQUEUED,
        back,
        job_id=run.job.job_id,
        job_class=run.job.job_class,
        user=run.job.user,
        reason=(
            f"{run.preempting}; waits again and runs all {run.job.shots} shots "
            f"({sum(counts.values())} measured shots dropped)"
        ),
    )


def _tick(state: OwnerState, policy: Policy, now: datetime) -> Steps:
    events: list[Event] = []
    effects: list[Effect] = []
    expired: dict[str, JobError] = {}
    for job_id in state.index.expired(now):
        expired[job_id] = JobError(
            code=ErrorCode.DEADLINE_EXCEEDED,
            message=f"job {job_id} did not start before its deadline",
        )
    for name, job_class in policy.classes.items():
        if job_class.max_queue_age_s is None:
            continue
        for job in state.index.oldest(name):
            if (now - job.queued_at).total_seconds() > job_class.max_queue_age_s:
                expired.setdefault(
                    job.job_id,
                    JobError(
                        code=ErrorCode.QUEUE_AGE_EXCEEDED,
                        message=(
                            f"job {job.job_id} waited longer than the {job_class.max_queue_age_s:g} s "
                            f"queue-age limit of class {name}"
                        ),
                    ),
                )
    for job_id, error in expired.items():
        more, replies = end_waiting(state.waiting[job_id], JobState.TIMED_OUT, error, now)
        events += more
        effects += replies
    for run in (state.running, *state.lanes.values()):  # emulator lanes have the same limits
        if run is None or run.stop_error is not None:
            continue
        run_class = policy.classes.get(run.job.job_class)  # None: a reload dropped it
        limits = (run.job.max_runtime_s, run_class.max_runtime_s if run_class else None)
        limit_s = min((x for x in limits if x is not None), default=None)
        if limit_s is not None and (now - run.started_at).total_seconds() > limit_s:
            error = JobError(
                code=ErrorCode.MAX_RUNTIME_EXCEEDED,
                message=f"job {run.job.job_id} ran longer than its {limit_s:g} s limit",
            )
            events.append(stopping_event(run.job, error, JobState.TIMED_OUT))
            effects.append(StopRun(run.job.job_id))
    return events, effects


def _dispatch(state: OwnerState, policy: Policy, now: datetime, ctx: Context) -> Steps:
    if state.calibration_pending and state.running is None and state.qpu is QPUState.IDLE:
        started = make_event(
            Topic.CALIBRATION_STARTED,
            CalibrationEpoch(epoch=state.epoch),
            reason="dispatching held for calibration",
        )
        return [started], []
    decision = decide_indexed(view_of(state, policy, now), state.index, now)
    if decision.action is Action.START and decision.job is not None:
        job = decision.job
        started = make_event(
            Topic.JOB_STARTED,
            JobStarted(
                attempt=job.attempt,
                epoch=state.epoch,
                backend=ctx.backend,
                shots=job.remaining_shots,
            ),
            job_id=job.job_id,
            job_class=job.job_class,
            user=job.user,
            reason=decision.reason,
        )
        return [started], [StartRun(job, job.remaining_shots, job.attempt)]
    run = state.running
    if decision.action is Action.PREEMPT and run is not None and run.preempting is None:
        challenger = decision.job.job_id if decision.job is not None else None
        event = make_event(
            Topic.JOB_PREEMPTING,
            JobPreempting(challenger=challenger),
            job_id=run.job.job_id,
            job_class=run.job.job_class,
            user=run.job.user,
            reason=decision.reason,
        )
        return [event], [StopRun(run.job.job_id)]
    if decision.calibration_due and state.due_announced != state.epoch:
        due = make_event(
            Topic.CALIBRATION_DUE, CalibrationEpoch(epoch=state.epoch), reason=decision.reason
        )
        return [due], []
    return [], []


def _recovered(state: OwnerState, ctx: Context) -> Steps:
    lanes = requeue_lanes(state, ctx.owner_id)
    run = state.running
    if run is None:
        return lanes, []
    counts = run.counts or run.job.prior_counts
    event = make_event(
        Topic.JOB_REQUEUED,
        JobBack(counts=counts, shots_done=sum(counts.values()), shots=run.job.shots),
        job_id=run.job.job_id,
        job_class=run.job.job_class,
        user=run.job.user,
        reason=(
            f"it was on the QPU when owner {state.owner_id} stopped; owner {ctx.owner_id} runs "
            f"the remaining {run.job.shots - sum(counts.values())} shots"
        ),
    )
    return [event, *lanes], []
