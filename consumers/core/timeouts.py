"""What time passing ends (pure): the time limits a `Tick` checks, with "now" as an argument.

A waiting job past its deadline (`DEADLINE_EXCEEDED`) or past its class's `max_queue_age_s`
(`QUEUE_AGE_EXCEEDED`) ends TIMED_OUT at once, its submitter answered. A run on the QPU or on an
emulator lane past its own or its class's `max_runtime_s` (the smaller) is stopped: a
`job.stopping` event names TIMED_OUT and the error, and the job ends when the backend reports
the stopped run (`consumers.core.runs`). A session past its length or idle timeout ends
(`consumers.core.sessions`).
"""

from __future__ import annotations

from datetime import datetime

from consumers.core.outcomes import Effect, Steps, StopRun, end_waiting, stopping_event
from consumers.core.sessions import expired as expired_sessions
from consumers.core.state import OwnerState
from schemas.enums import ErrorCode, JobState
from schemas.envelope import Event
from schemas.jobs import JobError
from schemas.policy import Policy


def tick(state: OwnerState, policy: Policy, now: datetime) -> Steps:
    """The jobs that waited too long end; the runs that ran too long are stopped."""
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
    events += expired_sessions(state, now)
    return events, effects
