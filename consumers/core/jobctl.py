"""Per-job control in the spirit of Slurm's ``scontrol``: show, hold, release, update, requeue.

Pure handlers for the command table (`consumers.core.commands`), which lets the job's submitter
or an operator send them (`show` included: like `result`, it shows one user's job to that user). Within that:

- **hold** / **release**: only a waiting job. A hold by an operator is an operator hold, which
  its submitter cannot release (a submitter's own hold is a user hold; an operator may release
  either, and an operator's hold replaces a user's). A held job keeps its place and its age.
- **update**: only a waiting job. A submitter may lower its priority, never raise it, and move
  it to a class it may submit to (the class's ACL, shot limit and backlog limit); an operator
  may set any priority 0-9 and any class whose shot limit the job fits.
- **requeue**: a running job is stopped and waits again, to run from its first shot (the counts
  measured so far are dropped; `ctl preempt` keeps them instead); a job that ended ERROR waits
  again (`job.resubmitted`), with the request the shell read back from the log.

Each change is one typed event (`job.held`, `job.released`, `job.updated`, `job.requeuing`)
that `OwnerState.apply` folds; the command itself is logged as ``control.<command>`` with its
sender, so `qsched history JOB` shows who did what, when.
"""

from __future__ import annotations

from datetime import datetime

from consumers.core.command_types import Command, Done, Refused, is_operator
from consumers.core.order import Waiting
from consumers.core.outcomes import StopRun, job_event
from consumers.core.policy import validate_admission
from consumers.core.state import OwnerState
from consumers.core.view import queue_entries
from schemas.details import JobDetail
from schemas.enums import ErrorCode, JobState
from schemas.events import (
    JobHeld,
    JobReleased,
    JobRequeuing,
    JobUpdated,
    Topic,
    make_event,
)
from schemas.policy import Policy


def _trace_id(job: Waiting) -> str | None:
    parent = job.trace.get("traceparent", "")
    return parent.split("-")[1] if parent.count("-") == 3 else None


def detail_of(state: OwnerState, policy: Policy, now: datetime, job_id: str) -> JobDetail | None:
    """Everything the state knows of a waiting or running job (None: neither)."""
    run = state.running
    if run is not None and run.job.job_id == job_id:
        job = run.job
        counts = run.counts or job.prior_counts
        return _detail(
            job,
            JobState.RUNNING,
            started_at=run.started_at,
            position=0,
            eta_s=0.0,
            attempt=run.attempt,
            shots_done=min(sum(counts.values()), job.shots),
        )
    waiting = state.waiting.get(job_id)
    if waiting is None:
        return None
    (entry,) = queue_entries(state, policy, now, job_id=job_id)
    return _detail(
        waiting,
        JobState.QUEUED,
        position=entry.position,
        eta_s=entry.eta_s,
        held=entry.held,
        factors=entry.factors,
        attempt=waiting.attempt,
        shots_done=min(sum(waiting.prior_counts.values()), waiting.shots),
    )


def _detail(job: Waiting, state: JobState, **known: object) -> JobDetail:
    hold_kind = None
    if job.held_by is not None:
        hold_kind = "operator" if job.operator_hold else "user"
    return JobDetail.model_validate(
        {
            "job_id": job.job_id,
            "state": state,
            "job_class": job.job_class,
            "user": job.user,
            "account": job.account,
            "priority": job.priority,
            "shots": job.shots,
            "submitted_at": job.submitted_at,
            "accepted_at": job.accepted_at,
            "hold_by": job.held_by,
            "hold_kind": hold_kind,
            "preemptions": job.preemptions,
            "session_id": job.session_id,
            "allocation": job.allocation,
            "deadline": job.deadline,
            "trace_id": _trace_id(job),
            **known,
        }
    )


def show(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """A waiting or running job's details; for a finished one only how it ended (the rest is
    in the log), so a look at it is no refused command in its history."""
    job_id = given.command.job_id or ""
    detail = detail_of(state, policy, now, job_id)
    if detail is None and job_id in state.finished:
        return Done(_not_live(state, job_id))
    if detail is None:
        raise Refused(ErrorCode.UNKNOWN_JOB, _not_live(state, job_id))
    return Done(f"job {job_id} {detail.state.value}", reply={"job": detail})


def _not_live(state: OwnerState, job_id: str) -> str:
    ended = state.finished.get(job_id)
    if ended is not None:
        return f"job {job_id} already ended {ended.value}"
    return f"job {job_id} is not waiting nor running"


def _waiting(state: OwnerState, job_id: str, what: str) -> Waiting:
    """The waiting job `job_id`, or the refusal naming where it is instead."""
    job = state.waiting.get(job_id)
    if job is not None:
        return job
    run = state.running
    if run is not None and run.job.job_id == job_id:
        raise Refused(ErrorCode.NOT_WAITING, f"job {job_id} is running; only waiting jobs {what}")
    if job_id in state.finished:
        raise Refused(ErrorCode.NOT_WAITING, _not_live(state, job_id))
    raise Refused(ErrorCode.UNKNOWN_JOB, f"no job {job_id} is known to the owner")


def hold(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """Hold a waiting job until it is released (an operator's hold is an operator hold)."""
    job = _waiting(state, given.command.job_id or "", "can be held")
    user = given.user or "?"
    operator = is_operator(policy, given)
    if job.operator_hold or (job.held_by is not None and not operator):
        return Done(f"job {job.job_id} is already held by {job.held_by}")
    kind = "an operator" if operator else "a user"
    held = job_event(Topic.JOB_HELD, JobHeld(by=user, operator=operator), job)
    return Done(f"job {job.job_id} held ({kind} hold); qsched release frees it", events=[held])


def release(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """Release a held job; a submitter cannot release an operator's hold."""
    job = _waiting(state, given.command.job_id or "", "can be released")
    if job.held_by is None:
        return Done(f"job {job.job_id} is not held")
    if job.operator_hold and not is_operator(policy, given):
        raise Refused(
            ErrorCode.NOT_AUTHORISED,
            f"job {job.job_id} is held by operator {job.held_by}; only an operator may release it",
        )
    released = job_event(Topic.JOB_RELEASED, JobReleased(by=given.user or "?"), job)
    return Done(f"job {job.job_id} released", events=[released])


def update(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """Change a waiting job's priority or class, within what the sender may do."""
    command = given.command
    job = _waiting(state, command.job_id or "", "can be updated")
    operator = is_operator(policy, given)
    priority = command.priority if command.priority != job.priority else None
    job_class = command.job_class if command.job_class != job.job_class else None
    if priority is not None and priority > job.priority and not operator:
        raise Refused(
            ErrorCode.NOT_AUTHORISED,
            f"a submitter may only lower a job's priority ({job.priority}), not raise it to "
            f"{priority}; ask an operator",
        )
    if job_class is not None:
        _check_class(state, policy, job, job_class, operator)
    if priority is None and job_class is None:
        return Done(f"job {job.job_id} unchanged")
    changed = JobUpdated(by=given.user or "?", priority=priority, job_class=job_class)
    what = ", ".join(
        part
        for part in (
            f"priority {job.priority} -> {priority}" if priority is not None else "",
            f"class {job.job_class} -> {job_class}" if job_class is not None else "",
        )
        if part
    )
    return Done(
        f"job {job.job_id} updated: {what}", events=[job_event(Topic.JOB_UPDATED, changed, job)]
    )


def _resubmit(state: OwnerState, given: Command, job_id: str) -> Done:
    """A job that ended ERROR waits again, from the request the shell read back from the log."""
    accepted = given.resubmit
    if accepted is None or accepted.job.job_id != job_id:
        raise Refused(
            ErrorCode.NOT_WAITING,
            f"job {job_id} ended ERROR, but this owner no longer knows where its request is in "
            "the log (only the last 10,000 jobs that ended ERROR are kept); submit it again",
        )
    event = make_event(
        Topic.JOB_RESUBMITTED,
        accepted,
        job_id=job_id,
        job_class=accepted.job.job_class,
        user=accepted.user,
        reason=f"requeued by {given.user} after it ended ERROR",
    )
    return Done(f"job {job_id} waits again after ending ERROR", events=[event])


def _check_class(
    state: OwnerState, policy: Policy, job: Waiting, job_class: str, operator: bool
) -> None:
    """Refuse a class the job may not move to (any sender: unknown class, shot limit)."""
    problem = validate_admission(policy, job_class, job.user, job.shots)
    if problem is not None and problem.code is ErrorCode.NOT_AUTHORISED and operator:
        max_shots = policy.classes[job_class].max_shots  # an operator passes the class's ACL
        if max_shots is None or job.shots <= max_shots:
            problem = None
        else:
            raise Refused(
                ErrorCode.TOO_MANY_SHOTS,
                f"{job.shots} shots exceed the {max_shots}-shot limit of class {job_class}",
            )
    if problem is not None:
        raise Refused(problem.code, problem.message)
    limit = policy.classes[job_class].max_waiting
    waiting = state.index.per_class[job_class]
    if not operator and limit is not None and waiting >= limit:
        raise Refused(
            ErrorCode.BACKLOG_LIMIT,
            f"backlog limit of class {job_class} reached: {waiting} of {limit} jobs waiting",
        )


def requeue(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """Stop the running job, or take back one that ended ERROR: it waits again and runs from
    its first shot."""
    job_id = given.command.job_id or ""
    run = state.running
    if run is None or run.job.job_id != job_id:
        if job_id in state.waiting:
            raise Refused(ErrorCode.NOT_WAITING, f"job {job_id} is already waiting")
        if state.finished.get(job_id) is JobState.ERROR:
            return _resubmit(state, given, job_id)
        if job_id in state.finished:
            raise Refused(
                ErrorCode.NOT_WAITING,
                f"{_not_live(state, job_id)}; only a running job or one that ended ERROR can be "
                "requeued (submit it again)",
            )
        raise Refused(ErrorCode.UNKNOWN_JOB, f"no job {job_id} is known to the owner")
    if run.preempting is not None or run.stop_error is not None:
        raise Refused(ErrorCode.NOT_WAITING, f"job {job_id} is already being stopped")
    requeuing = job_event(
        Topic.JOB_REQUEUING,
        JobRequeuing(by=given.user or "?"),
        run.job,
        f"requeued by {given.user}",
    )
    return Done(
        f"requeuing {job_id}: it runs again from its first shot",
        events=[requeuing],
        effects=[StopRun(job_id)],
    )
