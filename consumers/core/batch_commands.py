"""The commands about one batch (pure): ``batch-show`` (counts by state, each job's state),
``batch-close`` (Pulser's ``declare_complete``: no more jobs; queued ones still run),
``batch-cancel`` (closed, waiting jobs canceled, the running one stopped), ``batch-retry`` (its
jobs that ended ERROR wait again, `job.resubmitted`), ``batch-results`` (the shell completes the
reply with the ended jobs' results, `AnswerBatchResults`). Only the batch's submitter or an
operator may send them. A batch's arrival (creating it, adding jobs) is `consumers.core.batches`.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from consumers.core.command_types import Command, Done, Refused, is_operator
from consumers.core.outcomes import AnswerBatchResults, StopRun, end_waiting, stopping_event
from consumers.core.state import OwnerState
from consumers.core.state_data import Batch
from schemas.batches import BatchDetail
from schemas.enums import ErrorCode, JobState
from schemas.envelope import Event
from schemas.events import BatchClosed, JobAccepted, Topic, make_event
from schemas.jobs import JobError, JobRequest
from schemas.policy import Policy


def batch_of(state: OwnerState, policy: Policy, given: Command) -> Batch:
    """The batch a command names, if the sender may act on it.

    Raises:
        Refused: unknown batch, or another user's (for a sender who is no operator).
    """
    batch_id = given.command.batch_id or ""
    batch = state.batches.get(batch_id)
    if batch is None:
        raise Refused(ErrorCode.UNKNOWN_BATCH, f"no batch {batch_id} is known to the owner")
    if batch.user != given.user and not is_operator(policy, given):
        raise Refused(ErrorCode.NOT_AUTHORISED, f"batch {batch_id} is another user's")
    return batch


def job_state(state: OwnerState, job_id: str) -> JobState:
    """Where one job of a batch is now."""
    if job_id in state.finished:
        return state.finished[job_id]
    if state.run_of(job_id) is not None:
        return JobState.RUNNING
    return JobState.QUEUED


def detail(state: OwnerState, batch: Batch) -> BatchDetail:
    """What `batch-show` tells of a batch."""
    states = [job_state(state, job_id).value for job_id in batch.jobs]
    return BatchDetail(
        batch_id=batch.batch_id,
        user=batch.user,
        job_class=batch.job_class,
        open=batch.open,
        canceled=batch.canceled,
        digest=batch.digest,
        variables=batch.variables,
        created_at=batch.created_at,
        job_ids=list(batch.jobs),
        states=states,
        counts=dict(Counter(states)),
        atom_order=batch.atom_order,
        basis=batch.basis,
    )


def show(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """``batch-show``: counts by state and each job's state."""
    found = detail(state, batch_of(state, policy, given))
    counts = ", ".join(f"{n} {s}" for s, n in sorted(found.counts.items())) or "no jobs"
    shape = "open" if found.open else "closed"
    return Done(f"batch {found.batch_id} ({shape}): {counts}", reply={"batch": found})


def results(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """``batch-results``: the shell adds the ended jobs' results (`AnswerBatchResults`)."""
    return show(state, policy, given, now)


def close(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """``batch-close``: no more jobs may join (queued ones still run)."""
    batch = batch_of(state, policy, given)
    if not batch.open:
        return Done(f"batch {batch.batch_id} is already closed")
    event = _closed(batch, given.user or "", canceled=False)
    return Done(f"batch {batch.batch_id} closed: {len(batch.jobs)} job(s)", events=[event])


def cancel(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """``batch-cancel``: closed, its waiting jobs canceled, its running jobs stopped."""
    batch = batch_of(state, policy, given)
    code = (
        ErrorCode.CANCELED_BY_OPERATOR if batch.user != given.user else ErrorCode.CANCELED_BY_USER
    )
    error = JobError(code=code, message=f"batch {batch.batch_id} canceled by {given.user}")
    done = Done("", events=[_closed(batch, given.user or "", canceled=True)])
    canceled = stopped = 0
    for job_id in batch.jobs:
        waiting = state.waiting.get(job_id)
        run = state.run_of(job_id)
        if waiting is not None:
            events, effects = end_waiting(waiting, JobState.CANCELED, error, now)
            done.events += events
            done.effects += effects
            canceled += 1
        elif run is not None and run.stop_error is None:
            done.events.append(stopping_event(run.job, error, JobState.CANCELED))
            done.effects.append(StopRun(job_id))
            stopped += 1
    done.message = f"batch {batch.batch_id} canceled: {canceled} queued job(s), {stopped} stopped"
    done.fields = {"canceled": canceled}
    return done


def retry(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """``batch-retry``: its jobs that ended ERROR wait again, same ids, runs and variables."""
    batch = batch_of(state, policy, given)
    failed = [j for j in batch.jobs if state.finished.get(j) is JobState.ERROR]
    if batch.canceled:
        raise Refused(ErrorCode.BATCH_CLOSED, f"batch {batch.batch_id} was canceled")
    events = []
    for job_id in failed:
        shots, variables = batch.jobs[job_id]
        job = JobRequest(
            job_id=job_id,
            job_class=batch.job_class,
            shots=shots,
            sequence="",
            batch_id=batch.batch_id,
            variables=variables,
            session_id=batch.session_id,
            submitted_at=now,
        )
        payload = JobAccepted(job=job, user=batch.user, reply_to=batch.reply_to)
        events.append(
            make_event(
                Topic.JOB_RESUBMITTED,
                payload,
                job_id=job_id,
                job_class=batch.job_class,
                user=batch.user,
                reason=f"batch {batch.batch_id} retried by {given.user}",
            )
        )
    return Done(f"batch {batch.batch_id}: {len(failed)} failed job(s) wait again", events=events)


def results_effect(given: Command, reply: object, state: OwnerState) -> AnswerBatchResults | None:
    """The effect that completes a ``batch-results`` reply (None: the command was refused)."""
    batch = state.batches.get(given.command.batch_id or "")
    if batch is None:
        return None
    ended = [j for j in batch.jobs if j in state.finished]
    return AnswerBatchResults(given.reply_to, reply, ended)  # type: ignore[arg-type]


def _closed(batch: Batch, by: str, *, canceled: bool) -> Event:
    return make_event(
        Topic.BATCH_CLOSED,
        BatchClosed(batch_id=batch.batch_id, by=by, canceled=canceled),
        job_class=batch.job_class,
        user=batch.user,
        reason=f"{'canceled' if canceled else 'closed'} by {by}",
    )
