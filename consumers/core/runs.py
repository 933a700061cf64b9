"""What the backend's reports on a run mean, as events (pure): progress, and how a run ends.

`progress` turns a `Progress` report into a `job.progress` event and a reply to the submitter.
`finished` reads a `Finished` report against how the run was being stopped: a completed run
ends DONE; a retryable failure is retried (`job.retrying`, after the policy's backoff) while
the policy's `retry.attempts` last, else it ends ERROR; a stopped run was preempted
(`job.preempted`, back in the backlog with its counts), requeued (`job.requeued`, back with its
counts dropped), or canceled or timed out (the final state its `job.stopping` named).
`recovered` is the end of the runs a dead owner left: they wait again. The counts of a run are
added to those of the job's earlier runs (`merge_counts`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from consumers.core.inputs import Context, Finished, Progress
from consumers.core.lanes import requeue_lanes
from consumers.core.outcomes import Reply, Steps, final_event, job_event
from consumers.core.state import OwnerState
from consumers.core.state_data import Run
from schemas.enums import ErrorCode, JobState
from schemas.envelope import Event
from schemas.events import JobBack, JobProgress, JobRetrying, Topic, make_event
from schemas.jobs import JobError
from schemas.jobs import JobProgress as ProgressMessage
from schemas.policy import Policy


def merge_counts(earlier: dict[str, int], later: dict[str, int]) -> dict[str, int]:
    """Bitstring counts of two parts of one job added up."""
    merged = dict(earlier)
    for bits, count in later.items():
        merged[bits] = merged.get(bits, 0) + count
    return merged


def progress(state: OwnerState, given: Progress) -> Steps:
    """More shots of a run measured: a `job.progress` event and the counts for its submitter."""
    run = state.run_of(given.job_id)
    if run is None:
        return [], []
    counts = merge_counts(run.job.prior_counts, given.counts)
    shots_done = min(sum(counts.values()), run.job.shots)
    # `make_event`, not `job_event`: a progress event does not name the submitter.
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


def finished(
    state: OwnerState, policy: Policy, given: Finished, now: datetime, ctx: Context
) -> Steps:
    """A run ended on the backend: the job ends, is retried, or waits again (see above)."""
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
        reason = f"{run.preempting}; back in the backlog after {shots} of {run.job.shots} shots"
        return [job_event(Topic.JOB_PREEMPTED, back, run.job, reason)], []
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
    reason = (
        f"{run.preempting}; waits again and runs all {run.job.shots} shots "
        f"({sum(counts.values())} measured shots dropped)"
    )
    return job_event(Topic.JOB_REQUEUED, back, run.job, reason)


def retrying_event(
    run: Run,
    policy: Policy,
    error: JobError,
    counts: dict[str, int],
    execution_s: float,
    now: datetime,
) -> Event:
    """The run failed retryably within the job's retry budget: it waits, then runs again."""
    failures = run.job.failures + 1
    wait_s = policy.retry.backoff_after(failures)
    shots = sum(counts.values())
    retrying = JobRetrying(
        counts=counts,
        shots_done=shots,
        shots=run.job.shots,
        execution_s=execution_s,
        error=error,
        retry_at=now + timedelta(seconds=wait_s),
        failures=failures,
    )
    reason = (
        f"run {run.attempt} failed ({error.code.value}: {error.message}); run "
        f"{run.attempt + 1} in {wait_s:g} s, failure {failures} of "
        f"{policy.retry.attempts} allowed"
    )
    return job_event(Topic.JOB_RETRYING, retrying, run.job, reason)


def recovered(state: OwnerState, ctx: Context) -> Steps:
    """This owner rebuilt the state: the runs the dead owner left (QPU and lanes) wait again."""
    lanes = requeue_lanes(state, ctx.owner_id)
    run = state.running
    if run is None:
        return lanes, []
    counts = run.counts or run.job.prior_counts
    back = JobBack(counts=counts, shots_done=sum(counts.values()), shots=run.job.shots)
    reason = (
        f"it was on the QPU when owner {state.owner_id} stopped; owner {ctx.owner_id} runs "
        f"the remaining {run.job.shots - sum(counts.values())} shots"
    )
    return [job_event(Topic.JOB_REQUEUED, back, run.job, reason), *lanes], []
