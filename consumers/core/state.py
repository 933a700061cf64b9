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
saying what that event changes. The handlers of a job's runs (started to ended) are
`consumers.core.run_fold`, of sessions `consumers.core.session_fold`.

Fencing: every event carries the activation term of the owner that wrote it; an event of a term
lower than the highest seen (an owner that was frozen or cut off and came back) is ignored.
`apply` never raises for an event of the log: an event it cannot use (a stale term, a job that
is not where the event says, a move the QPU's state machine forbids, a payload that does not
fit) is counted in `ignored` and kept with why in `ignored_events`, which `qsched history` and
`qsched events replay --explain` show. A handler says why by raising `Ignored`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from consumers.core.budget_fold import budget_changed
from consumers.core.context import forgettable, registration
from consumers.core.fairshare import Usage
from consumers.core.machine import QPUEvent
from consumers.core.order import Waiting
from consumers.core.reservations import reservation_changed
from consumers.core.run_fold import (
    back,
    final,
    preempting,
    progress,
    requeuing,
    retrying,
    started,
    stopping,
    waiting_job,
)
from consumers.core.session_fold import (
    belongs,
    implicit_session,
    session_ended,
    session_opened,
)
from consumers.core.state_data import Batch, IgnoredEvent, StateData
from consumers.errors import Ignored, IllegalTransition
from schemas.context import Allocation
from schemas.enums import CommandName, JobState
from schemas.envelope import Event
from schemas.events import (
    AdmissionHold,
    BatchClosed,
    BatchFacts,
    CalibrationComplete,
    CalibrationEpoch,
    ControlApplied,
    JobHeld,
    JobReleased,
    JobUpdated,
    OwnerActivated,
    Topic,
    accepted_facts,
    command_of,
    payload_of,
    topic_of,
)

REMEMBERED_BATCHES = 10_000  # batches kept (the oldest go first), open or not
RESERVATION_COMMANDS = (
    CommandName.RESERVATION_CREATE,
    CommandName.RESERVATION_UPDATE,
    CommandName.RESERVATION_DELETE,
)
HOLD_COMMANDS = {
    CommandName.PAUSE: QPUEvent.PAUSE,
    CommandName.RESUME: QPUEvent.RESUME,
    CommandName.DRAIN: QPUEvent.DRAIN,
}


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
            self._ignore(event, f"stale term {event.term}: an owner of term {self.term} is active")
            return
        self.events += 1
        self.last_event_id = event.event_id
        topic = topic_of(event)
        handler = _HANDLERS.get(topic) if topic is not None else None
        if handler is None:
            return
        try:
            handler(self, event)
        except (Ignored, IllegalTransition, ValueError) as exc:
            self._ignore(event, str(exc))
        except KeyError as exc:  # never expected: the handlers name what they miss (`Ignored`)
            self._ignore(event, f"{event.topic} does not fit the state (no {exc})")

    def _ignore(self, event: Event, why: str) -> None:
        self.ignored += 1
        self.ignored_events.append(IgnoredEvent(event.event_id, event.topic, event.job_id, why))


def _activated(state: OwnerState, event: Event) -> None:
    activated = payload_of(event, OwnerActivated)
    state.term = max(state.term, activated.term)
    state.owner_id = event.owner_id
    state.policy = activated.policy


def _accepted(state: OwnerState, event: Event) -> None:
    accepted = accepted_facts(event)
    job = accepted.job
    if job.job_id in state.owners:  # a second acceptance never replaces the first
        raise Ignored(f"job {job.job_id} was accepted before")
    state.owners[job.job_id] = accepted.user
    state._number(job.job_id, accepted.number)
    waiting = Waiting.of(accepted, state.epoch, event.at)
    session = state.sessions.get(job.session_id or "")
    if session is not None and not belongs(session, waiting.user, waiting.allocation):
        waiting = replace(waiting, session_id=None)  # another's session: the job is not in it
    elif job.session_id:
        if session is None:  # a log written before sessions were events
            session = implicit_session(waiting, event.at)
            state.sessions[job.session_id] = session
        session.last_activity_at = event.at
    state._wait(waiting)
    batch = state.batches.get(job.batch_id or "")
    if batch is not None:
        batch.jobs[job.job_id] = (job.shots, dict(job.variables or {}))


def _batch_created(state: OwnerState, event: Event) -> None:
    created = payload_of(event, BatchFacts)
    if created.batch_id in state.batches:
        raise Ignored(f"batch {created.batch_id} was created before")  # a batch is created once
    state.batches[created.batch_id] = Batch(
        batch_id=created.batch_id,
        user=created.user,
        job_class=created.job_class,
        digest=created.digest,
        created_at=event.at,
        variables=dict(created.variables),
        open=created.open,
        session_id=created.session_id,
        reply_to=created.reply_to,
        atom_order=list(created.atom_order),
        basis=created.basis,
    )
    while len(state.batches) > REMEMBERED_BATCHES:
        del state.batches[next(iter(state.batches))]


def _batch_closed(state: OwnerState, event: Event) -> None:
    closed = payload_of(event, BatchClosed)
    batch = state.batches.get(closed.batch_id)
    if batch is None:
        raise Ignored(f"batch {closed.batch_id} is not known")
    batch.open = False
    batch.canceled = batch.canceled or closed.canceled


def _resubmitted(state: OwnerState, event: Event) -> None:
    """A job that ended ERROR waits again (`qsched requeue`), with its request from the log."""
    accepted = accepted_facts(event)
    job_id = accepted.job.job_id
    if state.finished.get(job_id) is not JobState.ERROR:
        raise Ignored(f"job {job_id} did not end ERROR")
    if state.owners.get(job_id) != accepted.user:
        raise Ignored(f"job {job_id} is not {accepted.user}'s")
    del state.finished[job_id]
    state._wait(Waiting.of(accepted, state.epoch, event.at))


def _held(state: OwnerState, event: Event) -> None:
    held = payload_of(event, JobHeld)
    job = waiting_job(state, event)
    state._rewait(replace(job, held_by=held.by, operator_hold=held.operator))


def _released(state: OwnerState, event: Event) -> None:
    payload_of(event, JobReleased)
    job = waiting_job(state, event)
    state._rewait(replace(job, held_by=None, operator_hold=False))


def _updated(state: OwnerState, event: Event) -> None:
    updated = payload_of(event, JobUpdated)
    job = waiting_job(state, event)
    state._rewait(
        replace(
            job,
            priority=job.priority if updated.priority is None else updated.priority,
            job_class=updated.job_class or job.job_class,
        )
    )


def _admission(state: OwnerState, event: Event) -> None:
    """An admission plugin holds a waiting job, or lets it go."""
    hold = payload_of(event, AdmissionHold).hold
    job = waiting_job(state, event)
    state._rewait(replace(job, admission_hold=hold))


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
    """An accepted command changes the state only through the events it causes, except these:
    pause/resume/drain move the QPU, mode sets the mode, allocation-ended marks the allocation."""
    applied = payload_of(event, ControlApplied)
    command = command_of(event)
    if not applied.ok or command is None:
        return
    if command in HOLD_COMMANDS:
        state._move(HOLD_COMMANDS[command])
    elif command is CommandName.MODE and applied.mode is not None:
        state.mode, state.mode_message = applied.mode, applied.message
    elif command is CommandName.ALLOCATION_STARTED and applied.registered is not None:
        _registered(state, registration(applied.registered, event.at), event.at)
    elif command is CommandName.ALLOCATION_ENDED and applied.allocation:
        state.ended_allocations.add(applied.allocation)
        known = state.allocations.get(applied.allocation)
        if known is not None:
            state.allocations[known.id] = known.model_copy(update={"ended": True})
    elif command is CommandName.RELOAD_POLICY and applied.policy is not None:
        state.policy = applied.policy
    elif command in (CommandName.BUDGET_SET, CommandName.BUDGET_TOP_UP):
        budget_changed(state, applied)
    elif command in RESERVATION_COMMANDS:
        reservation_changed(state, applied, event.at)


def _registered(state: OwnerState, allocation: Allocation, at: datetime) -> None:
    """The registry learns (or relearns) an allocation; a changed end (a time limit raised)
    reaches the jobs of the allocation that wait. Long-ended allocations are forgotten."""
    before = state.allocations.get(allocation.id)
    if before is not None and before.ended:
        allocation = allocation.model_copy(update={"ended": True})  # its epilog came first
    state.allocations[allocation.id] = allocation
    if before is not None and before.end != allocation.end:
        for job in [j for j in state.waiting.values() if j.allocation == allocation.id]:
            state._rewait(replace(job, allocation_end=allocation.end))
    for key in forgettable(state.allocations, at):
        del state.allocations[key]


_HANDLERS: dict[Topic, Any] = {
    Topic.OWNER_ACTIVATED: _activated,
    Topic.JOB_ACCEPTED: _accepted,
    Topic.BATCH_CREATED: _batch_created,
    Topic.BATCH_CLOSED: _batch_closed,
    Topic.JOB_STARTED: started,
    Topic.JOB_PROGRESS: progress,
    Topic.JOB_STOPPING: stopping,
    Topic.JOB_PREEMPTING: preempting,
    Topic.JOB_PREEMPTED: back,
    Topic.JOB_REQUEUED: back,
    Topic.JOB_RETRYING: retrying,
    Topic.JOB_DONE: final,
    Topic.JOB_ERROR: final,
    Topic.JOB_CANCELED: final,
    Topic.JOB_TIMED_OUT: final,
    Topic.JOB_REJECTED: final,
    Topic.JOB_ADMISSION: _admission,
    Topic.JOB_RESUBMITTED: _resubmitted,
    Topic.JOB_HELD: _held,
    Topic.JOB_RELEASED: _released,
    Topic.JOB_UPDATED: _updated,
    Topic.JOB_REQUEUING: requeuing,
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
