"""The operator's commands about the QPU and the owner (pure handlers of `consumers.core.commands`'s
table): ``pause``/``resume``/``drain`` (the QPU's state machine), ``mode``, ``preempt``,
``calibration-start``/``calibration-complete``, ``reload-policy`` and ``dead-requeue`` (the shell
did the work; the handler words the answer).
"""

from __future__ import annotations

from datetime import datetime

from consumers.core.command_types import Command, Done, Refused
from consumers.core.machine import transition
from consumers.core.outcomes import StopRun
from consumers.core.state import HOLD_COMMANDS, OwnerState
from consumers.errors import IllegalTransition
from schemas.enums import ErrorCode, QPUState
from schemas.envelope import Event
from schemas.events import CalibrationComplete, CalibrationEpoch, JobPreempting, Topic, make_event
from schemas.policy import Policy


def hold(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """``pause``, ``resume``, ``drain``: the QPU state machine's move (the fold applies it)."""
    move = HOLD_COMMANDS[given.command.command]
    try:
        after = transition(state.qpu, move, busy=state.running is not None)
    except IllegalTransition as exc:
        raise Refused(ErrorCode.INTERNAL, str(exc)) from None
    return Done(f"QPU is {after.value}")


def mode(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """``pause``, ``resume``, ``drain``: the QPU state machine's move (applied by the fold)."""
    mode = given.command.mode
    assert mode is not None  # the schema requires it
    return Done(f"mode is {mode.value}", {"mode": mode, "message": given.command.message})


def preempt(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """``mode``: the owner's mode and its message."""
    run = state.running
    job_id = given.command.job_id
    if run is None or run.job.job_id != job_id:
        raise Refused(ErrorCode.UNKNOWN_JOB, f"job {job_id} is not on the QPU")
    if run.preempting is not None:
        return Done(f"{job_id} is already being preempted")
    return Done(
        f"preempting {job_id}; it goes back to the backlog with its shots so far",
        events=[_preempting(state, f"preempted by operator {given.user}")],
        effects=[StopRun(run.job.job_id)],
    )


def _preempting(state: OwnerState, reason: str) -> Event:
    """``preempt``: the job on the QPU goes back to the backlog with its shots so far."""
    run = state.running
    assert run is not None
    return make_event(
        Topic.JOB_PREEMPTING,
        JobPreempting(),
        job_id=run.job.job_id,
        job_class=run.job.job_class,
        user=run.job.user,
        reason=reason,
    )


def calibration_start(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """``calibration-start``: now if the QPU is free, else once its job ends (preempted with `force`)."""
    force = given.command.force
    if state.qpu is QPUState.CALIBRATING:
        return Done("already calibrating")
    if state.running is None:
        if state.qpu is not QPUState.IDLE:
            raise Refused(ErrorCode.INTERNAL, f"the QPU is {state.qpu.value}; resume it first")
        started = make_event(
            Topic.CALIBRATION_STARTED,
            CalibrationEpoch(epoch=state.epoch),
            reason="dispatching held for calibration",
        )
        return Done("calibrating: only calibration jobs run", events=[started])
    pending = make_event(
        Topic.CALIBRATION_PENDING,
        CalibrationEpoch(epoch=state.epoch),
        reason="calibration starts when the QPU is free",
    )
    job_id = state.running.job.job_id
    if not force:
        return Done(f"calibrating once {job_id} ends", events=[pending])
    done = Done(f"preempting {job_id}; calibrating once it is back in the backlog")
    if state.running.preempting is None:
        done.events.append(_preempting(state, "calibration starts now"))
        done.effects.append(StopRun(job_id))
    done.events.append(pending)
    return done


def calibration_complete(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """``calibration-start``: now if the QPU is free, else once its job ends (or is preempted, `force`)."""
    if state.qpu is not QPUState.CALIBRATING:
        raise Refused(ErrorCode.INTERNAL, f"the QPU is {state.qpu.value}, not CALIBRATING")
    if state.running is not None:
        raise Refused(
            ErrorCode.INTERNAL, f"calibration job {state.running.job.job_id} is still running"
        )
    epoch = state.epoch + 1
    complete = make_event(
        Topic.CALIBRATION_COMPLETE,
        CalibrationComplete(epoch=epoch, device=given.command.specs),
        reason=f"epoch {epoch}",
    )
    changed = f", {given.detail}" if given.detail else ""
    return Done(f"calibration epoch {epoch}{changed}; dispatching again", events=[complete])


def reload_policy(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """``calibration-complete``: a new epoch, and dispatching again."""
    fields = {"policy": given.policy} if given.policy is not None else {}
    return Done(given.detail or "policy reloaded", fields=fields)


def dead_requeue(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """``reload-policy``: the shell read and checked the policy file."""
    # the shell took the dead letter and says so (consumers.owner.deadletters); it refused otherwise
    return Done(given.detail or "requeued")
