"""The owner's state, and `apply`, the only function that changes it: the fold of the log.

Theory of operation. The event log is the truth; `OwnerState` is a fold of it. The active owner
publishes an event (confirmed), then applies it here; a standby that takes over, `qsched events
replay` and `qsched simulate` fold the same events with the same `apply` and get the same state.
Nothing else writes to an `OwnerState`: `step` reads it and proposes events.

The backlog is `waiting` (job id -> `Waiting`, the scheduling facts of a job, never its sequence)
plus the `index` that keeps it in policy order incrementally; `running` is the job on the QPU.
`owners` remembers who submitted every job ever accepted, so a job id belongs to one user.
Those fields, the queries on them and the bookkeeping that keeps them consistent are `StateData`
(`consumers.core.state_data`); this module is the fold: `apply`, and one handler per event topic
saying what that event changes.

Fencing: every event carries the activation term of the owner that wrote it; an event of a term
lower than the highest seen (an owner that was frozen or cut off and came back) is ignored.
`apply` never raises for an event of the log: an event it cannot use is counted in `ignored`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from consumers.core.fairshare import Usage
from consumers.core.machine import QPUEvent
from consumers.core.order import Waiting
from consumers.core.session_fold import (
    implicit_session,
    session_ended,
    session_opened,
    session_run_ended,
)
from consumers.core.state_data import Run, StateData
from consumers.errors import IllegalTransition
from schemas.enums import JobState
from schemas.events import (
    AcceptedFacts,
    AdmissionHold,
    CalibrationComplete,
    CalibrationEpoch,
    ControlApplied,
    JobBack,
    JobHeld,
    JobProgress,
    JobReleased,
    JobRequeuing,
    JobRetrying,
    JobStarted,
    JobStopping,
    JobUpdated,
    OwnerActivated,
    Topic,
    payload_of,
    topic_of,
)
from schemas.messages import Event

FINAL_STATES = {
    Topic.JOB_DONE: JobState.DONE,
    Topic.JOB_ERROR: JobState.ERROR,
    Topic.JOB_CANCELED: JobState.CANCELED,
    Topic.JOB_TIMED_OUT: JobState.TIMED_OUT,
    Topic.JOB_REJECTED: JobState.REJECTED,
}
REMEMBERED_JOBS = 100_000  # ended jobs whose id and submitter are kept (deduplication)
HOLD_COMMANDS = {"pause": QPUEvent.PAUSE, "resume": QPUEvent.RESUME, "drain": QPUEvent.DRAIN}


@dataclass
class OwnerState(StateData):
    """Everything the owner knows, rebuilt from the log: `StateData` with its one writer."""

    @classmethod
    def for_half_life(cls, half_life_s: float) -> OwnerState:
        """An empty state whose usage ledgers halve every `half_life_s` (the policy's)."""
        return cls(
            account_usage=Usage(half_life_s),
            user_usage=Usage(half_life_s),
            class_usage=Usage(half_life_s),
        )

    def apply(self, event: Event) -> None:
        """Fold one event into the state (pure: no I/O, no clock; the time is the event's)."""
        if event.term is not None and event.term < self.term:
            self.ignored += 1
            return
        self.events += 1
        self.last_event_id = event.event_id
        topic = topic_of(event)
        handler = _HANDLERS.get(topic) if topic is not None else None
        if handler is None:
            return
        try:
            handler(self, event)
        except (ValueError, KeyError, IllegalTransition):
            self.ignored += 1


def _activated(state: OwnerState, event: Event) -> None:
    state.term = max(state.term, payload_of(event, OwnerActivated).term)
    state.owner_id = event.owner_id


def _accepted(state: OwnerState, event: Event) -> None:
    accepted = payload_of(event, AcceptedFacts)
    job = accepted.job
    if job.job_id in state.owners:
        raise KeyError(job.job_id)  # a second acceptance never replaces the first
    state.owners[job.job_id] = accepted.user
    state._number(job.job_id, accepted.number)
    waiting = Waiting.of(accepted, state.epoch, event.at)
    state._wait(waiting)
    if job.session_id:
        session = state.sessions.get(job.session_id)
        if session is None:  # a log written before sessions were events
            session = implicit_session(waiting, event.at)
            state.sessions[job.session_id] = session
        session.last_activity_at = event.at


def _started(state: OwnerState, event: Event) -> None:
    started = payload_of(event, JobStarted)
    job = state.waiting[event.job_id or ""]
    run = Run(job, event.at, started.attempt, started.epoch, started.backend)
    if started.lane is not None:  # an emulator lane: the QPU's state machine is not involved
        if started.lane in state.lanes:
            raise KeyError(started.lane)
        state._unwait(job.job_id)
        state.lanes[started.lane] = replace(run, lane=started.lane, specs=started.specs)
        return
    state._move(QPUEvent.START)  # raises before anything changed when the move is illegal
    state._unwait(job.job_id)
    state.running = run


def _progress(state: OwnerState, event: Event) -> None:
    run = state.run_of(event.job_id)
    if run is not None:
        run.counts = dict(payload_of(event, JobProgress).counts)


def _stopping(state: OwnerState, event: Event) -> None:
    stopping = payload_of(event, JobStopping)
    run = state.run_of(event.job_id)
    if run is not None:
        run.stop_error, run.stop_state = stopping.error, stopping.state


def _preempting(state: OwnerState, event: Event) -> None:
    run = state.running
    if run is not None and run.job.job_id == event.job_id:
        state._move(QPUEvent.PREEMPT)
        run.preempting = event.reason or "preempted"


def _back(state: OwnerState, event: Event) -> None:
    """A run cut short (preempted, or its owner died): the job waits again with its counts."""
    _wait_again(state, event, payload_of(event, JobBack))


def _retrying(state: OwnerState, event: Event) -> None:
    """A run failed retryably: the job waits again, counted and held until its retry time."""
    retrying = payload_of(event, JobRetrying)
    _wait_again(state, event, retrying, failures=retrying.failures, not_before=retrying.retry_at)


def _wait_again(state: OwnerState, event: Event, back: JobBack, **changes: Any) -> None:
    run = state.run_of(event.job_id)
    if run is None:
        raise KeyError(event.job_id)
    if run.lane is not None:
        del state.lanes[run.lane]  # lane time is not QPU time: no fair-share charge
    else:
        state._move(QPUEvent.FINISH)
        state.running = None
        state._charge(run.job, back.execution_s, event.at)
        session_run_ended(state, run.job, back.execution_s, event.at)
    job = replace(
        run.job,
        attempt=run.attempt + 1,
        preemptions=run.job.preemptions + (1 if back.preempted else 0),
        prior_counts=dict(back.counts),
        **changes,
    )
    if run.restart:
        job = replace(job, prior_counts={})
    state._wait(job)


def _resubmitted(state: OwnerState, event: Event) -> None:
    """A job that ended ERROR waits again (`qsched requeue`), with its request from the log."""
    accepted = payload_of(event, AcceptedFacts)
    job_id = accepted.job.job_id
    if (
        state.finished.get(job_id) is not JobState.ERROR
        or state.owners.get(job_id) != accepted.user
    ):
        raise KeyError(job_id)
    del state.finished[job_id]
    state._wait(Waiting.of(accepted, state.epoch, event.at))


def _held(state: OwnerState, event: Event) -> None:
    held = payload_of(event, JobHeld)
    job = state.waiting[event.job_id or ""]
    state._rewait(replace(job, held_by=held.by, operator_hold=held.operator))


def _released(state: OwnerState, event: Event) -> None:
    payload_of(event, JobReleased)
    job = state.waiting[event.job_id or ""]
    state._rewait(replace(job, held_by=None, operator_hold=False))


def _updated(state: OwnerState, event: Event) -> None:
    updated = payload_of(event, JobUpdated)
    job = state.waiting[event.job_id or ""]
    state._rewait(
        replace(
            job,
            priority=job.priority if updated.priority is None else updated.priority,
            job_class=updated.job_class or job.job_class,
        )
    )


def _requeuing(state: OwnerState, event: Event) -> None:
    payload_of(event, JobRequeuing)
    run = state.running
    if run is None or run.job.job_id != event.job_id:
        raise KeyError(event.job_id)
    state._move(QPUEvent.PREEMPT)
    run.preempting = event.reason or "requeued"
    run.restart = True


def _final(state: OwnerState, event: Event) -> None:
    job_id = event.job_id
    if not job_id:
        return  # a refusal not attached to any job (e.g. a reused job id)
    final = FINAL_STATES[Topic(event.topic)]
    if job_id in state.finished:
        raise KeyError(job_id)  # a job ends once
    run = state.run_of(job_id)
    if run is not None and run.lane is not None:
        del state.lanes[run.lane]
    elif run is not None:
        execution_s = event.result.timings.execution_s if event.result is not None else None
        state._move(QPUEvent.FINISH)
        state.running = None
        state._charge(run.job, float(execution_s or 0.0), event.at)
        session_run_ended(state, run.job, float(execution_s or 0.0), event.at)
    elif job_id in state.waiting:
        state._unwait(job_id)
    elif job_id in state.owners:
        raise KeyError(job_id)  # accepted and not waiting nor running: already ended
    elif final is not JobState.REJECTED and final is not JobState.CANCELED:
        raise KeyError(job_id)
    if event.user and job_id not in state.owners:
        state.owners[job_id] = event.user
    state.finished[job_id] = final
    if len(state.finished) > REMEMBERED_JOBS:
        oldest = next(iter(state.finished))
        del state.finished[oldest]
        state.owners.pop(oldest, None)
        state._forget_number(oldest)


def _admission(state: OwnerState, event: Event) -> None:
    """An admission plugin holds a waiting job, or lets it go."""
    hold = payload_of(event, AdmissionHold).hold
    job = state._unwait(event.job_id or "")
    if job is None:
        raise KeyError(event.job_id)
    state._wait(replace(job, admission_hold=hold))


def _qpu(state: OwnerState, event: Event) -> None:
    state._move(QPUEvent.BACKEND_UP if event.topic == Topic.QPU_UP else QPUEvent.BACKEND_DOWN)


def _calibration_pending(state: OwnerState, event: Event) -> None:
    payload_of(event, CalibrationEpoch)
    state.calibration_pending = True


def _calibration_started(state: OwnerState, event: Event) -> None:
    state._move(QPUEvent.CALIBRATION_START)
    state.calibration_pending = False


def _calibration_complete(state: OwnerState, event: Event) -> None:
    complete = payload_of(event, CalibrationComplete)
    state._move(QPUEvent.CALIBRATION_DONE)
    state.epoch = complete.epoch
    state.calibrated_at = event.at
    state.device = complete.device or state.device


def _calibration_due(state: OwnerState, event: Event) -> None:
    state.due_announced = payload_of(event, CalibrationEpoch).epoch


def _control(state: OwnerState, event: Event) -> None:
    applied = payload_of(event, ControlApplied)
    if not applied.ok:
        return
    command = event.topic.split(".", 1)[1]
    if command in HOLD_COMMANDS:
        state._move(HOLD_COMMANDS[command])
    elif command == "mode" and applied.mode is not None:
        state.mode, state.mode_message = applied.mode, applied.message
    elif command == "allocation-ended" and applied.allocation:
        state.ended_allocations.add(applied.allocation)


_HANDLERS: dict[Topic, Any] = {
    Topic.OWNER_ACTIVATED: _activated,
    Topic.JOB_ACCEPTED: _accepted,
    Topic.JOB_STARTED: _started,
    Topic.JOB_PROGRESS: _progress,
    Topic.JOB_STOPPING: _stopping,
    Topic.JOB_PREEMPTING: _preempting,
    Topic.JOB_PREEMPTED: _back,
    Topic.JOB_REQUEUED: _back,
    Topic.JOB_RETRYING: _retrying,
    Topic.JOB_DONE: _final,
    Topic.JOB_ERROR: _final,
    Topic.JOB_CANCELED: _final,
    Topic.JOB_TIMED_OUT: _final,
    Topic.JOB_REJECTED: _final,
    Topic.JOB_ADMISSION: _admission,
    Topic.JOB_RESUBMITTED: _resubmitted,
    Topic.JOB_HELD: _held,
    Topic.JOB_RELEASED: _released,
    Topic.JOB_UPDATED: _updated,
    Topic.JOB_REQUEUING: _requeuing,
    Topic.QPU_DOWN: _qpu,
    Topic.QPU_UP: _qpu,
    Topic.CALIBRATION_PENDING: _calibration_pending,
    Topic.CALIBRATION_STARTED: _calibration_started,
    Topic.CALIBRATION_COMPLETE: _calibration_complete,
    Topic.CALIBRATION_DUE: _calibration_due,
    Topic.SESSION_OPENED: session_opened,
    Topic.SESSION_ENDED: session_ended,
    Topic.CONTROL: _control,
}
