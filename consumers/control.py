"""Operators' commands: who may send them, what each does, the reply and the event.

Commands arrive on ``<ns>.control``. Only users listed as operators in the policy may send them;
the AMQP ``user_id`` (which RabbitMQ checks against the authenticated user) decides. Each command
gets a `ControlReply` on its ``reply_to`` and a ``control.<command>`` event, accepted or not, with
its sender and when it was issued, and one INFO line in the owner's log. Clients publish commands
with an AMQP expiration; a command older than ``owner.control_max_age_s`` is refused anyway
(STALE_COMMAND), so an owner that starts late never applies yesterday's ``pause``.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pika.adapters.blocking_connection import BlockingChannel

from consumers.core.machine import QPUEvent, transition
from consumers.errors import IllegalTransition, OwnerError
from consumers.intake import allocation_ended, canceled_by
from schemas.codec import decode
from schemas.enums import CommandName, ErrorCode, JobState, QPUState
from schemas.errors import DecodeError, PolicyError
from schemas.messages import (
    ControlCommand,
    ControlReply,
    Event,
    JobError,
    RunningJob,
    StatusReport,
)
from schemas.policy import load_policy
from schemas.sequence import load_device

if TYPE_CHECKING:
    from consumers.owner import Owner

log = logging.getLogger(__name__)


class PolicyReloadRefused(OwnerError):
    """The policy file cannot replace the current policy; the current one stays."""


class NotCalibrating(OwnerError):
    """calibration-complete while the QPU is not being calibrated."""


class NotRunning(OwnerError):
    """A command about the running job named a job that is not running."""


class UnknownJob(OwnerError):
    """A command named a job this owner has never seen and that cannot be waiting in a queue."""

    code = ErrorCode.UNKNOWN_JOB


STATE_EVENTS = {
    CommandName.PAUSE: QPUEvent.PAUSE,
    CommandName.RESUME: QPUEvent.RESUME,
    CommandName.DRAIN: QPUEvent.DRAIN,
}


def status_report(owner: Owner) -> StatusReport:
    """What `qsched status` shows."""
    running = None
    if owner.running is not None:
        job = owner.running.job
        running = RunningJob(
            job_id=job.job_id,
            job_class=job.job_class,
            shots=job.shots,
            started_at=owner.running.started_at,
            user=owner.running.user,
        )
    # Ask the core afresh: a status command may be handled before the loop re-decided.
    decision = owner.current_decision()
    return StatusReport(
        owner_id=owner.owner_id,
        qpu_state=owner.state,
        mode=owner.history.mode,
        mode_message=owner.history.mode_message,
        running=running,
        queue_depth=owner.queue_depth(),
        held=owner.holdings.per_class(),
        epoch=owner.history.epoch,
        backend=owner.backend.name,
        last_decision=decision.reason if decision else None,
        held_reasons=dict(decision.held[:20]) if decision else {},
    )


def _apply(owner: Owner, command: ControlCommand, user: str | None) -> tuple[str, dict[str, Any]]:
    """Carry out an accepted command; returns the reply text and the event data."""
    name = command.command
    if name in STATE_EVENTS:
        owner.state = transition(owner.state, STATE_EVENTS[name], busy=owner.running is not None)
        return f"QPU is {owner.state.value}", {"qpu_state": owner.state.value}
    if name is CommandName.MODE:
        assert command.mode is not None
        owner.history.mode, owner.history.mode_message = command.mode, command.message
        return f"mode is {command.mode.value}", {
            "mode": command.mode.value,
            "message": command.message,
        }
    if name is CommandName.CANCEL:
        assert command.job_id is not None
        return _cancel(owner, command.job_id, user)
    if name is CommandName.RELOAD_POLICY:
        return _reload_policy(owner)
    if name is CommandName.CALIBRATION_START:
        return _calibration_start(owner, command.force)
    if name is CommandName.CALIBRATION_COMPLETE:
        return _calibration_complete(owner, command.specs)
    if name is CommandName.ALLOCATION_ENDED:
        assert command.allocation is not None
        return _allocation_ended(owner, command.allocation)
    if name is CommandName.PREEMPT:
        assert command.job_id is not None
        if owner.running is None or owner.running.job.job_id != command.job_id:
            raise NotRunning(f"job {command.job_id} is not on the QPU")
        owner.preempt(f"preempted by operator {user}")
        return f"preempting {command.job_id}; it goes back to its queue with its shots so far", {}
    return "status", {}


def _cancel(owner: Owner, job_id: str, user: str | None) -> tuple[str, dict[str, Any]]:
    error = canceled_by(job_id, user)
    if job_id in owner.history.finished:
        return f"job {job_id} already ended {owner.history.finished[job_id].state.value}", {
            "pending": False
        }
    if owner.running is not None and owner.running.job.job_id == job_id:
        owner.running.cancel_error = error
        owner.backend.cancel(job_id)
        return f"canceling running job {job_id}", {"pending": False}
    held = owner.holdings.find(job_id)
    if held is not None:
        owner.finish_held(held, JobState.CANCELED, error)
        return f"canceled queued job {job_id}", {"pending": False}
    depth, per_class = owner.queue_depth(), owner.holdings.per_class()
    not_yet_seen = sum(depth.values()) - sum(per_class.values())
    if not_yet_seen <= 0:
        raise UnknownJob(f"no job {job_id}: it is not queued, running or in the log")
    owner.history.pending_cancels[job_id] = user or "operator"
    return f"job {job_id} will be canceled when it reaches the owner", {"pending": True}


def _calibration_start(owner: Owner, now: bool) -> tuple[str, dict[str, Any]]:
    """Hold dispatching for calibration: at once when idle, after (or, with `now`, instead of)
    the running job otherwise."""
    if owner.state is QPUState.CALIBRATING:
        return "already calibrating", {"now": now}
    if owner.running is None:
        owner.enter_calibration()
        return "calibrating: only calibration jobs run", {"now": now}
    owner.calibration_pending = True
    job_id = owner.running.job.job_id
    if now:
        owner.preempt("calibration starts now")
        return f"preempting {job_id}; calibrating once it is back in its queue", {"now": now}
    return f"calibrating once {job_id} ends", {"now": now}


def _calibration_complete(owner: Owner, specs: str | None) -> tuple[str, dict[str, Any]]:
    """Bump the epoch, install new device specs if given, resume dispatching."""
    if owner.state is not QPUState.CALIBRATING:
        raise NotCalibrating(f"the QPU is {owner.state.value}, not CALIBRATING")
    if owner.running is not None:
        raise NotCalibrating(f"calibration job {owner.running.job.job_id} is still running")
    device = load_device(specs) if specs else None  # ValueError: not a Pulser device
    epoch = owner.history.epoch + 1
    owner.complete_calibration(epoch, specs, device)
    changed = f", new specs for {device.name}" if device is not None else ""
    return f"calibration epoch {epoch}{changed}; dispatching again", {"epoch": epoch}


def _allocation_ended(owner: Owner, allocation: str) -> tuple[str, dict[str, Any]]:
    """Cancel an ended Slurm allocation's queued jobs, stop its running one, refuse its next."""
    owner.history.ended_allocations.add(allocation)
    error = allocation_ended(allocation)
    canceled = 0
    for held in list(owner.holdings):
        if held.job.slurm is not None and held.job.slurm.job_id == allocation:
            owner.finish_held(held, JobState.CANCELED, error)
            canceled += 1
    running = owner.running
    stopping = (
        running is not None
        and running.job.slurm is not None
        and running.job.slurm.job_id == allocation
    )
    if running is not None and stopping:
        running.cancel_error = error
        owner.backend.cancel(running.job.job_id)
    stopped = f", stopping {running.job.job_id}" if running is not None and stopping else ""
    return f"allocation {allocation} ended: {canceled} queued job(s) canceled{stopped}", {
        "allocation": allocation,
        "canceled": canceled,
    }


def _reload_policy(owner: Owner) -> tuple[str, dict[str, Any]]:
    """Swap in the policy file as it is now; a bad file leaves the current policy in force.

    Classes may be changed but not added or removed: each class is a queue the owner consumes,
    and those are set up when it becomes active (restart it to change the set).
    """
    if owner.policy_path is None:
        raise PolicyReloadRefused(
            "this owner runs on the default policy (no --policy file to reload)"
        )
    new = load_policy(owner.policy_path)  # PolicyError names the line and reason
    if set(new.classes) != set(owner.policy.classes):
        raise PolicyReloadRefused(
            f"the policy changes the set of classes ({sorted(owner.policy.classes)} -> "
            f"{sorted(new.classes)}); restart the owner to add or remove a class"
        )
    owner.policy = new
    return f"policy reloaded from {owner.policy_path}", {"path": str(owner.policy_path)}


def handle_control(
    owner: Owner, channel: BlockingChannel, tag: int, props: Any, body: bytes
) -> None:
    """Decode, authorise, apply and answer one control message, then ack it."""
    publisher = owner.publisher
    assert publisher is not None
    try:
        command = decode(body, props.type, ControlCommand, owner.settings.max_message_bytes)
    except DecodeError as exc:
        from consumers.intake import decode_error, refuse

        refuse(
            channel,
            publisher,
            owner.topology,
            tag,
            props,
            body,
            decode_error(exc),
            owner.topology.control_queue,
            owner.clock(),
        )
        return
    user = props.user_id
    error: JobError | None = None
    data: dict[str, Any] = {}
    age = owner.clock() - command.issued_at
    if age > timedelta(seconds=owner.settings.owner.control_max_age_s):
        error = JobError(
            code=ErrorCode.STALE_COMMAND,
            message=f"command {command.command.value} was issued {age.total_seconds():.0f} s ago; "
            "not applied (send it again)",
            details={"issued_at": command.issued_at.isoformat()},
        )
    elif user not in owner.policy.operators:
        error = JobError(
            code=ErrorCode.NOT_AUTHORISED,
            message=f"user {user!r} is not an operator",
            details={"user": user},
        )
    else:
        try:
            message, data = _apply(owner, command, user)
        except (
            IllegalTransition,
            NotRunning,
            NotCalibrating,
            PolicyReloadRefused,
            PolicyError,
            UnknownJob,
            ValueError,
        ) as exc:
            error = JobError(
                code=getattr(exc, "code", ErrorCode.INTERNAL),
                message=str(exc),
                details={"line": getattr(exc, "line", None)},
            )
    ok = error is None
    status = status_report(owner) if ok and command.command is CommandName.STATUS else None
    reply = ControlReply(
        command_id=command.command_id,
        command=command.command,
        ok=ok,
        message=message if ok else error.message if error else "",
        error=error,
        status=status,
    )
    if command.command is not CommandName.STATUS or not ok:
        publisher.event(
            Event(
                topic=f"control.{command.command.value}",
                job_id=command.job_id,
                user=user,
                reason=reply.message,
                qpu_state=owner.state,
                data=data
                | {
                    "ok": ok,
                    "command_id": command.command_id,
                    "issued_at": command.issued_at.isoformat(),
                },
            )
        )
        log.info(
            "control %s from %s%s: %s%s",
            command.command.value,
            user,
            f" ({command.job_id})" if command.job_id else "",
            "" if ok else "refused: ",
            reply.message,
        )
    publisher.reply(props.reply_to, reply, command.command_id)
    channel.basic_ack(tag)
    if ok:
        owner.request_dispatch()
