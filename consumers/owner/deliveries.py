"""Decode and check one delivery into an input for the core; nothing a client sends is trusted.

A job delivery becomes an `Arrival` (with the shell's verdict on its sequence against the
current device), or a `Refusal` when it cannot even be read as a job of its sender: no
``user_id``, a foreign content type, a priority outside 0-9, a ``reply_to`` that is not one of
the sender's own reply queues (``<ns>.reply.<user>.*``), or a body that does not decode. Headers
the owner wrote on earlier versions (``x-qsched-*``) are never read: a job's history is in the
log, not in its message.

A QRMI gateway (a broker user the policy names in ``gateway_users``) acts for the user whose
MUNGE credential it decoded: it names that user in the ``x-on-behalf-of`` header, and the job or
command is that user's from then on (`acting_user`). Anyone else naming a user there is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from brokers.connection import CONTENT_TYPE
from brokers.topology import Topology
from consumers.core.outcomes import DeadLetter, Reply
from consumers.core.step import Arrival
from schemas.codec import decode
from schemas.enums import ErrorCode, JobState
from schemas.envelope import Event
from schemas.errors import DecodeError
from schemas.events import Refused, Topic, make_event
from schemas.jobs import JobError, JobRequest, JobResult, Timings
from schemas.sequence import SequenceChecker, validate_shots
from schemas.wire import MAX_PRIORITY

if TYPE_CHECKING:
    from pulser.devices._device_datacls import BaseDevice

ON_BEHALF_OF = "x-on-behalf-of"  # set by a QRMI gateway: the MUNGE-verified user it acts for
_USER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$")
TRACE_HEADERS = ("traceparent", "tracestate")
MAX_TRACE_HEADER = 512


@dataclass(frozen=True)
class Refusal:
    """A delivery that is no usable message of its sender: dead-letter it, answer if we may."""

    error: JobError
    user: str | None
    reply_to: str | None
    message_id: str | None


def refused(
    refusal: Refusal, queue: str, now: datetime
) -> tuple[list[Event], list[DeadLetter | Reply]]:
    """What a refused delivery means: a `job.rejected` event attached to no job (its id is the
    sender's word only), the delivery dead-lettered, and a REJECTED result to the sender if it
    named one of its own reply queues and a message id."""
    error = refusal.error
    event = make_event(
        Topic.JOB_REJECTED,
        Refused(code=error.code.value, message_id=refusal.message_id, queue=queue),
        user=refusal.user,
        reason=error.message,
    )
    effects: list[DeadLetter | Reply] = [DeadLetter(error)]
    if refusal.reply_to and refusal.message_id:
        result = JobResult(
            job_id=refusal.message_id,
            state=JobState.REJECTED,
            job_class=queue.rsplit(".", 1)[-1],
            shots=0,
            error=error,
            timings=Timings(queued_at=now, ended_at=now),
        )
        effects.append(Reply(refusal.reply_to, result, refusal.message_id))
    return [event], effects


def recheck(
    checker: SequenceChecker,
    sequence: str,
    shots: int,
    device: BaseDevice,
    epoch: int,
    parametrized: bool = False,
) -> JobError | None:
    """A waiting job's problem with a new calibration (epoch `epoch`), or None. Admission
    already held the job to its device (DEVICE_MISMATCH unless it opted in); here only the
    new calibration's limits are checked (a batch's job: its batch's `parametrized` one)."""
    problem = validate_shots(shots, device) or checker.check(
        sequence, device, allow_device_switch=True, parametrized=parametrized
    )
    if problem is None:
        return None
    message = f"after calibration epoch {epoch}: {problem.message}"
    return problem.model_copy(update={"message": message})


def own_reply_queue(reply_to: str | None, user: str | None, namespace: str) -> bool:
    """Whether `reply_to` is one of `user`'s reply queues (the only place the owner answers)."""
    return Topology(namespace, ()).is_reply_queue_of(reply_to, user)


def decode_error(exc: DecodeError) -> JobError:
    """The structured error sent back for a message that did not decode."""
    if exc.field is not None:
        code = ErrorCode.INVALID_SCHEMA
    elif "version" in exc.reason:
        code = ErrorCode.UNSUPPORTED_VERSION
    elif "exceeds" in exc.reason:
        code = ErrorCode.MESSAGE_TOO_LARGE
    else:
        code = ErrorCode.DECODE_ERROR
    return JobError(code=code, message=exc.reason, field=exc.field)


def check_envelope(props: Any, namespace: str) -> tuple[str | None, JobError | None]:
    """The sender's reply queue (if it is theirs) and what is wrong with the properties."""
    user = props.user_id
    reply_to = props.reply_to if own_reply_queue(props.reply_to, user, namespace) else None
    if not user:
        return reply_to, JobError(
            code=ErrorCode.NOT_AUTHORISED,
            message="user_id required: publish with the AMQP user_id property set",
            field="user_id",
        )
    if props.reply_to and reply_to is None:
        return None, JobError(
            code=ErrorCode.INVALID_REPLY_TO,
            message=f"reply_to {props.reply_to!r} is not one of {namespace}.reply.{user}.<id>",
            field="reply_to",
        )
    if props.content_type != CONTENT_TYPE:
        return reply_to, JobError(
            code=ErrorCode.DECODE_ERROR,
            message=f"content_type {props.content_type!r} is not {CONTENT_TYPE}",
            field="content_type",
        )
    priority = props.priority
    if priority is not None and not 0 <= int(priority) <= MAX_PRIORITY:
        return reply_to, JobError(
            code=ErrorCode.INVALID_SCHEMA,
            message=f"AMQP priority {priority} is outside 0-{MAX_PRIORITY}",
            field="priority",
        )
    return reply_to, None


def acting_user(props: Any, gateway_users: tuple[str, ...]) -> tuple[str, JobError | None]:
    """Whose message this is: the broker-verified sender, or the user a gateway acts for.

    Returns:
        The user, and the refusal when the ``x-on-behalf-of`` header is not the sender's to set
        (not a gateway) or names no plausible user.
    """
    sender = str(props.user_id)
    headers = props.headers if isinstance(props.headers, dict) else {}
    named = headers.get(ON_BEHALF_OF)
    if named is None:
        return sender, None
    if sender not in gateway_users:
        return sender, JobError(
            code=ErrorCode.NOT_AUTHORISED,
            message=f"user {sender!r} is no gateway: it may not act for another user",
            field=ON_BEHALF_OF,
        )
    if not isinstance(named, str) or not _USER_NAME.match(named):
        return sender, JobError(
            code=ErrorCode.INVALID_SCHEMA,
            message=f"{ON_BEHALF_OF} must name a user",
            field=ON_BEHALF_OF,
        )
    return named, None


def trace_headers(props: Any) -> dict[str, str]:
    """The W3C trace context the sender gave, if well-formed (strings of sane length)."""
    headers = props.headers if isinstance(props.headers, dict) else {}
    return {
        k: v
        for k in TRACE_HEADERS
        if isinstance(v := headers.get(k), str) and len(v) <= MAX_TRACE_HEADER
    }


def read_job(
    props: Any,
    body: bytes,
    routed_class: str,
    namespace: str,
    max_bytes: int,
    device: BaseDevice,
    sequences: SequenceChecker,
    gateway_users: tuple[str, ...] = (),
) -> Arrival | Refusal:
    """One job delivery as the core's input, or why it is refused."""
    reply_to, problem = check_envelope(props, namespace)
    message_id = props.message_id if isinstance(props.message_id, str) else None
    if problem is None:
        user, problem = acting_user(props, gateway_users)
    if problem is not None:
        return Refusal(problem, props.user_id, reply_to, message_id)
    try:
        job = decode(body, props.type, JobRequest, max_bytes)
    except DecodeError as exc:
        return Refusal(decode_error(exc), user, reply_to, message_id)
    arrival = Arrival(job, user, reply_to, trace_headers(props))
    if job.job_class != routed_class:
        problem = JobError(
            code=ErrorCode.INVALID_SCHEMA,
            message=f"job_class says {job.job_class!r} but the job was routed to {routed_class!r}",
            field="job_class",
        )
    else:
        problem = validate_shots(job.shots, device) or sequences.check(
            job.sequence, device, job.allow_device_switch
        )
    if problem is not None:
        return Arrival(arrival.job, arrival.user, reply_to, arrival.trace, problem)
    return arrival
