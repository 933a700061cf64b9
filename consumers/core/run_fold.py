"""How the event fold changes a job's runs: started (on the QPU or an emulator lane), its
progress, stopping, preempting, back in the backlog (preempted, requeued, retrying), requeuing,
and ended (its final event). `OwnerState.apply` calls these from its topic table; the figures
they charge to the ledger are `consumers.core.ledger_fold`, a session's part
`consumers.core.session_fold`. A handler says why it cannot use an event by raising `Ignored`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from consumers.core.ledger import Totals, run_totals
from consumers.core.ledger_fold import final_run, first_start
from consumers.core.machine import QPUEvent
from consumers.core.order import Waiting
from consumers.core.session_fold import session_run_ended
from consumers.core.state_data import Run, StateData
from consumers.errors import Ignored
from schemas.enums import JobState
from schemas.envelope import Event
from schemas.events import (
    JobBack,
    JobProgress,
    JobRequeuing,
    JobRetrying,
    JobStarted,
    JobStopping,
    Topic,
    payload_of,
)
from schemas.jobs import RunInterval

FINAL_STATES = {
    Topic.JOB_DONE: JobState.DONE,
    Topic.JOB_ERROR: JobState.ERROR,
    Topic.JOB_CANCELED: JobState.CANCELED,
    Topic.JOB_TIMED_OUT: JobState.TIMED_OUT,
    Topic.JOB_REJECTED: JobState.REJECTED,
}
RUN_OUTCOMES = {  # how a run that did not end its job ended, as its `RunInterval` says
    Topic.JOB_PREEMPTED: "preempted",
    Topic.JOB_REQUEUED: "requeued",
    Topic.JOB_RETRYING: "retrying",
}
REMEMBERED_JOBS = 100_000  # ended jobs whose id and submitter are kept (deduplication)


def waiting_job(state: StateData, event: Event) -> Waiting:
    """The waiting job the event names.

    Raises:
        Ignored: it names no waiting job.
    """
    job = state.waiting.get(event.job_id or "")
    if job is None:
        raise Ignored(f"job {event.job_id} is not waiting")
    return job


def started(state: StateData, event: Event) -> None:
    """A job starts on the QPU or an emulator lane; its queue wait ends at its first start."""
    started = payload_of(event, JobStarted)
    job = waiting_job(state, event)
    run = Run(job, event.at, started.attempt, started.epoch, started.backend, specs=started.specs)
    run.in_grace = started.in_grace
    if not job.runs:  # the queue wait ends at the first start (a rerun's does not count)
        state.ledger.charge(job, event.at, first_start(job, event.at))
    if started.lane is not None:  # an emulator lane: the QPU's state machine is not involved
        if started.lane in state.lanes:
            raise Ignored(f"{started.lane} runs {state.lanes[started.lane].job.job_id}")
        state._unwait(job.job_id)
        state.lanes[started.lane] = replace(run, lane=started.lane)
        return
    state._move(QPUEvent.START)  # raises before anything changed when the move is illegal
    state._unwait(job.job_id)
    state.running = run


def progress(state: StateData, event: Event) -> None:
    """A job starts on the QPU or on an emulator lane; its queue wait ends at its first start."""
    run = state.run_of(event.job_id)
    if run is not None:
        run.counts = dict(payload_of(event, JobProgress).counts)


def stopping(state: StateData, event: Event) -> None:
    """The counts a running job has so far."""
    stopping = payload_of(event, JobStopping)
    run = state.run_of(event.job_id)
    if run is not None:
        run.stop_error, run.stop_state = stopping.error, stopping.state


def preempting(state: StateData, event: Event) -> None:
    """Why a running job is being stopped, and how it is to end."""
    run = state.running
    if run is not None and run.job.job_id == event.job_id:
        state._move(QPUEvent.PREEMPT)
        run.preempting = event.reason or "preempted"


def back(state: StateData, event: Event) -> None:
    """A run cut short (preempted, or its owner died): the job waits again with its counts."""
    _wait_again(state, event, payload_of(event, JobBack))


def retrying(state: StateData, event: Event) -> None:
    """A run failed retryably: the job waits again, counted and held until its retry time."""
    retrying = payload_of(event, JobRetrying)
    _wait_again(state, event, retrying, failures=retrying.failures, not_before=retrying.retry_at)


def _wait_again(state: StateData, event: Event, back: JobBack, **changes: Any) -> None:
    run = state.run_of(event.job_id)
    if run is None:
        raise Ignored(f"job {event.job_id} is not running")
    if run.lane is not None:
        del state.lanes[run.lane]  # lane time is not QPU time: no fair-share charge
    else:
        state._move(QPUEvent.FINISH)
        state.running = None
        state._charge(run.job, back.execution_s, event.at)
        session_run_ended(state, run, back.execution_s, event.at)
    interval = RunInterval(
        started_at=run.started_at,
        ended_at=max(event.at, run.started_at),
        lane=run.lane,
        backend=run.backend,
        attempt=max(run.attempt, 1),
        outcome=_outcome(event, run),
    )
    shots = back.shots_done - sum(run.job.prior_counts.values())
    totals = run_totals(interval, shots)
    state.ledger.charge(run.job, event.at, totals)
    if run.lane is None and interval.outcome != "recovered":  # a recovered run's time is a gap
        state.shot_rate.record(totals.shots, totals.qpu_s)
    job = replace(
        run.job,
        attempt=run.attempt + 1,
        preemptions=run.job.preemptions + (1 if back.preempted else 0),
        prior_counts=dict(back.counts),
        runs=(*run.job.runs, interval),
        **changes,
    )
    if run.restart:
        job = replace(job, prior_counts={})
    state._wait(job)


def requeuing(state: StateData, event: Event) -> None:
    """The job on the QPU is being put back in the backlog from scratch (`qsched requeue`)."""
    payload_of(event, JobRequeuing)
    run = state.running
    if run is None or run.job.job_id != event.job_id:
        raise Ignored(f"job {event.job_id} is not on the QPU")
    state._move(QPUEvent.PREEMPT)
    run.preempting = event.reason or "requeued"
    run.restart = True


def final(state: StateData, event: Event) -> None:
    """The job on the QPU is being put back in the backlog from scratch (`qsched requeue`)."""
    job_id = event.job_id
    if not job_id:
        return  # a refusal not attached to any job (e.g. a reused job id)
    final = FINAL_STATES[Topic(event.topic)]
    if job_id in state.finished:  # a job ends once
        raise Ignored(f"job {job_id} ended {state.finished[job_id].value} before")
    run = state.run_of(job_id)
    if run is not None and run.lane is not None:
        del state.lanes[run.lane]
    elif run is not None:
        state._move(QPUEvent.FINISH)
        state.running = None
        state._charge(run.job, _last_run_s(event), event.at)
        session_run_ended(state, run, _last_run_s(event), event.at)
    if run is not None:
        totals = final_run(event, run, _last_run_s(event))
        state.ledger.charge(run.job, event.at, totals)
        state.shot_rate.record(totals.shots, totals.qpu_s)  # lane runs: emulator time, not QPU
    elif job_id in state.waiting:
        state.ledger.charge(state.waiting[job_id], event.at, Totals(jobs=1))
        state._unwait(job_id)
    elif job_id in state.owners:  # accepted and not waiting nor running: already ended
        raise Ignored(f"job {job_id} is neither waiting nor running")
    elif final is not JobState.REJECTED and final is not JobState.CANCELED:
        raise Ignored(f"job {job_id} was never accepted")
    if event.user and job_id not in state.owners:
        state.owners[job_id] = event.user
    state.finished[job_id] = final
    if len(state.finished) > REMEMBERED_JOBS:
        oldest = next(iter(state.finished))
        del state.finished[oldest]
        state.owners.pop(oldest, None)
        state._forget_number(oldest)


def _outcome(event: Event, run: Run) -> str:
    """How a run that did not end its job ended (`RunInterval.outcome`)."""
    topic = Topic(event.topic)
    if topic == Topic.JOB_REQUEUED and not run.restart:
        return "recovered"  # its owner died; the next owner took the job back at `event.at`
    return RUN_OUTCOMES.get(topic, topic.value)


def _last_run_s(event: Event) -> float:
    """The seconds of the run a final event ended (a log written before results listed their
    runs has them as `execution_s`)."""
    if event.result is None:
        return 0.0
    timings = event.result.timings
    if timings.runs:
        return timings.runs[-1].seconds
    return float(timings.execution_s or 0.0)
