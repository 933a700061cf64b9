"""`step`: every input to the owner becomes events (state changes) and effects (I/O to do).

Theory of operation. The shell turns what happens (a delivery, a backend report, a command, a
timer, "the QPU may be free") into an `Input` and calls `step(state, policy, input, now, ctx)`.
`step` reads the state and returns the events to publish and the effects to carry out; it never
changes the state. The shell publishes the events (confirmed), folds each into the state with
`OwnerState.apply`, then carries out the effects (start or stop a run, reply, dead-letter).
`Dispatch` is an input like the others: after any change the shell steps it once more, and the
decision is taken on the state as the previous events left it.

This module is the dispatcher, and the decision a `Dispatch` asks for (start the policy's choice,
preempt the running job, calibrate first). What the other inputs mean lives with its concern:
arrivals and admission answers in `consumers.core.admission`, the backend's reports and a
takeover's runs in `consumers.core.runs`, time limits in `consumers.core.timeouts`, emulator
lanes in `consumers.core.lanes`, commands in `consumers.core.commands`.
"""

from __future__ import annotations

from datetime import datetime

from consumers.core.admission import arrival, readmitted
from consumers.core.batches import batch_arrival
from consumers.core.commands import Command, run_command
from consumers.core.inputs import (
    Arrival,
    BatchArrival,
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
from consumers.core.lanes import lane_dispatch
from consumers.core.outcomes import (
    Effect,
    Recheck,
    StartRun,
    Steps,
    StopRun,
    end_waiting,
    job_event,
)
from consumers.core.owner_view import OwnerView
from consumers.core.policy import Action, decide_indexed
from consumers.core.reservations import calibration_call
from consumers.core.runs import finished, progress, recovered
from consumers.core.sessions import exclusive_hold, outranks
from consumers.core.state import OwnerState
from consumers.core.timeouts import tick
from consumers.core.view import view_of
from schemas.enums import JobState, QPUState
from schemas.envelope import Event
from schemas.events import (
    CalibrationEpoch,
    JobPreempting,
    JobStarted,
    QPUStatus,
    Topic,
    make_event,
    stamp,
)
from schemas.policy import Policy

__all__ = [
    "Arrival",
    "BatchArrival",
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
        now: the current time (never read from a clock here); every event is stamped with it.
        ctx: the owner's id and backend name, and the source of the events' ids.

    Returns:
        Events to publish and apply, in order (stamped), then effects to carry out.
    """
    events, effects = _step(state, policy, given, now, ctx)
    return [stamp(event, now, ctx.ids()) for event in events], effects


def _step(state: OwnerState, policy: Policy, given: Input, now: datetime, ctx: Context) -> Steps:
    match given:
        case Arrival():
            return arrival(state, policy, given, now)
        case BatchArrival():
            return batch_arrival(state, policy, given, now)
        case Progress():
            return progress(state, given)
        case Finished():
            return finished(state, policy, given, now, ctx)
        case Operational():
            topic = Topic.QPU_UP if given.up else Topic.QPU_DOWN
            return [make_event(topic, QPUStatus(up=given.up), reason=given.reason)], []
        case Note():
            return [make_event(Topic.JOB_NOTE, job_id=given.job_id, reason=given.message)], []
        case Tick():
            return tick(state, policy, now)
        case Dispatch():
            return _dispatch(state, policy, now, ctx, given)
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
            return recovered(state, ctx)
        case Command():
            return run_command(state, policy, given, now, ctx.owner_id, ctx.backend)
    raise TypeError(f"not an input: {given!r}")


def _dispatch(
    state: OwnerState, policy: Policy, now: datetime, ctx: Context, given: Dispatch
) -> Steps:
    """Hold for a pending calibration, else carry out the policy's decision on the backlog (a
    job checked at an older epoch is re-checked first: `Recheck`)."""
    if state.calibration_pending and state.running is None and state.qpu is QPUState.IDLE:
        started = make_event(
            Topic.CALIBRATION_STARTED,
            CalibrationEpoch(epoch=state.epoch),
            reason="dispatching held for calibration",
        )
        return [started], []
    view = view_of(state, policy, now)
    events, effects = _decided(state, policy, now, ctx, given, view)
    called = _reservation_calibration(state, policy, now, view)
    if called is not None and not any(e.topic == Topic.CALIBRATION_DUE for e in events):
        events = [called, *events]
    return events, effects


def _reservation_calibration(
    state: OwnerState, policy: Policy, now: datetime, view: OwnerView
) -> Event | None:
    """``calibration.due`` before a reservation in whose window the calibration window would
    close (`calibration_call`), once per epoch."""
    if state.due_announced == state.epoch or state.qpu is QPUState.CALIBRATING:
        return None
    reason = calibration_call(
        view.reservations,
        state.calibrated_at,
        view.calibration.valid_until,
        now,
        policy.calibration_lead_s,
    )
    if reason is None:
        return None
    return make_event(Topic.CALIBRATION_DUE, CalibrationEpoch(epoch=state.epoch), reason=reason)


def _decided(
    state: OwnerState, policy: Policy, now: datetime, ctx: Context, given: Dispatch, view: OwnerView
) -> Steps:
    """The policy's decision on the backlog, carried out."""
    decision = decide_indexed(view, state.index, now)
    if decision.action is Action.START and decision.job is not None:
        job = decision.job
        held_for = exclusive_hold(state, policy, now)
        if (
            held_for is not None
            and job.session_id != held_for.session_id
            and not outranks(policy, job.job_class, held_for)
        ):
            return [], []  # the QPU waits a bounded time for the session's next iteration
        if job.validated_epoch < state.epoch and job.job_id != given.checked:
            return [], [Recheck(job, job.remaining_shots)]
        started = job_event(
            Topic.JOB_STARTED,
            JobStarted(
                attempt=job.attempt,
                epoch=state.epoch,
                backend=ctx.backend,
                shots=job.remaining_shots,
                in_grace=job.session_id is not None and job.session_id in view.sessions_in_grace,
                specs=given.specs,
            ),
            job,
            decision.reason,
        )
        return [started], [StartRun(job, job.remaining_shots, job.attempt)]
    run = state.running
    if decision.action is Action.PREEMPT and run is not None and run.preempting is None:
        challenger = decision.job.job_id if decision.job is not None else None
        preempting = JobPreempting(challenger=challenger)
        event = job_event(Topic.JOB_PREEMPTING, preempting, run.job, decision.reason)
        return [event], [StopRun(run.job.job_id)]
    if decision.calibration_due and state.due_announced != state.epoch:
        due = make_event(
            Topic.CALIBRATION_DUE, CalibrationEpoch(epoch=state.epoch), reason=decision.reason
        )
        return [due], []
    return [], []
