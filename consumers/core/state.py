"""The owner's state, and `apply`, the only function that changes it.

Theory of operation. The event log is the truth; `OwnerState` is a fold of it. The active owner
publishes an event (confirmed), then applies it here; a standby that takes over, `qsched events
replay` and `qsched simulate` fold the same events with the same `apply` and get the same state.
Nothing else writes to an `OwnerState`: `step` reads it and proposes events.

The backlog is `waiting` (job id -> `Waiting`, the scheduling facts of a job, never its sequence)
plus the `index` that keeps it in policy order incrementally; `running` is the job on the QPU.
`owners` remembers who submitted every job ever accepted, so a job id belongs to one user.

Fencing: every event carries the activation term of the owner that wrote it; an event of a term
lower than the highest seen (an owner that was frozen or cut off and came back) is ignored.
`apply` never raises for an event of the log: an event it cannot use is counted in `ignored`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from consumers.core.fairshare import Usage
from consumers.core.machine import QPUEvent, transition
from consumers.core.order import OrderIndex, Waiting
from consumers.errors import IllegalTransition
from schemas.enums import JobState, Mode, QPUState
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
from schemas.messages import Event, JobError

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
class Run:
    """The job on the QPU: its facts, when this run started, and how it is being stopped."""

    job: Waiting
    started_at: datetime
    attempt: int
    epoch: int
    backend: str
    counts: dict[str, int] = field(default_factory=dict)
    preempting: str | None = None
    stop_error: JobError | None = None
    stop_state: JobState | None = None
    lane: str | None = None
    specs: str | None = None
    restart: bool = False


@dataclass
class OwnerState:
    """Everything the owner knows, rebuilt from the log.

    Attributes:
        term: highest activation term seen; events of lower terms are ignored.
        qpu: the QPU state machine's state (`consumers.core.machine`).
        mode: the site mode an operator set (None: the policy's).
        owners: submitter of every job ever accepted or refused, by job id.
        finished: final state of every job that ended, by job id.
        sessions: when a session's last run ended, by session id (its grace window starts).
        lanes: the runs on emulator lanes, by lane name (the QPU's run is `running`).
        ignored: events that could not be applied (stale term, unknown job, illegal move).
    """

    term: int = 0
    owner_id: str | None = None
    qpu: QPUState = QPUState.IDLE
    mode: Mode | None = None
    mode_message: str | None = None
    epoch: int = 0
    calibrated_at: datetime | None = None
    device: str | None = None
    calibration_pending: bool = False
    due_announced: int | None = None
    waiting: dict[str, Waiting] = field(default_factory=dict)
    running: Run | None = None
    lanes: dict[str, Run] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    finished: dict[str, JobState] = field(default_factory=dict)
    ended_allocations: set[str] = field(default_factory=set)
    sessions: dict[str, datetime] = field(default_factory=dict)
    account_usage: Usage = field(default_factory=Usage)
    user_usage: Usage = field(default_factory=Usage)
    class_usage: Usage = field(default_factory=Usage)
    index: OrderIndex = field(default_factory=OrderIndex)
    events: int = 0
    ignored: int = 0
    last_event_id: str | None = None

    # ---- reading -----------------------------------------------------------------------------

    def effective_mode(self, policy_mode: Mode) -> Mode:
        """The mode in force: an operator's, else the policy's."""
        return self.mode if self.mode is not None else policy_mode

    def run_of(self, job_id: str | None) -> Run | None:
        """The run of `job_id`, on the QPU or on a lane (None: not running)."""
        run = self.running
        if run is not None and run.job.job_id == job_id:
            return run
        return next((r for r in self.lanes.values() if r.job.job_id == job_id), None)

    def owner_of(self, job_id: str) -> str | None:
        """Who submitted `job_id` (None: never seen)."""
        return self.owners.get(job_id)

    def sessions_in_grace(self, now: datetime, grace_s: float) -> frozenset[str]:
        """Sessions whose last run ended less than `grace_s` ago: their next job goes first."""
        since = now - timedelta(seconds=grace_s)
        return frozenset(s for s, ended in self.sessions.items() if ended > since)

    @classmethod
    def for_half_life(cls, half_life_s: float) -> OwnerState:
        """An empty state whose usage ledgers halve every `half_life_s` (the policy's)."""
        return cls(
            account_usage=Usage(half_life_s),
            user_usage=Usage(half_life_s),
            class_usage=Usage(half_life_s),
        )

    # ---- the one writer ----------------------------------------------------------------------

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

    # ---- helpers for the handlers ------------------------------------------------------------

    def _move(self, what: QPUEvent) -> None:
        self.qpu = transition(self.qpu, what, busy=self.running is not None)

    def _charge(self, job: Waiting, seconds: float, at: datetime) -> None:
        if seconds <= 0:
            return
        self.account_usage.add(job.account_key, seconds, at)
        self.user_usage.add(job.user_key, seconds, at)
        self.class_usage.add(job.job_class, seconds, at)

    def _wait(self, job: Waiting) -> None:
        self.waiting[job.job_id] = job
        self.index.add(job)

    def _rewait(self, job: Waiting) -> None:
        """Replace a waiting job's facts (its lane may change)."""
        self._unwait(job.job_id)
        self._wait(job)

    def _unwait(self, job_id: str) -> Waiting | None:
        job = self.waiting.pop(job_id, None)
        if job is not None:
            self.index.remove(job)
        return job


def _activated(state: OwnerState, event: Event) -> None:
    state.term = max(state.term, payload_of(event, OwnerActivated).term)
    state.owner_id = event.owner_id


def _accepted(state: OwnerState, event: Event) -> None:
    accepted = payload_of(event, AcceptedFacts)
    job = accepted.job
    if job.job_id in state.owners:
        raise KeyError(job.job_id)  # a second acceptance never replaces the first
    state.owners[job.job_id] = accepted.user
    state._wait(Waiting.of(accepted, state.epoch, event.at))


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
        if run.job.session_id:
            state.sessions[run.job.session_id] = event.at
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
    Topic.CONTROL: _control,
}
