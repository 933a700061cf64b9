"""Checks a job must pass before it may wait for the QPU, and the refusal of those that fail.

`check_envelope` is the list of reasons to refuse a message before decoding it (no ``user_id``,
a ``reply_to`` that is not the sender's own reply queue, wrong ``content_type``, AMQP priority
outside 0-9: refused, not clamped, so a submitter learns its client is wrong). `check_job` is the
single list of reasons a decoded job is refused (class, ACL, shot limits, sequence against the
current device). `refuse` carries out a refusal: dead-letter the original bytes with the reason,
answer REJECTED when the sender's reply queue is known, log `job.rejected`, ack.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pika.adapters.blocking_connection import BlockingChannel

from brokers.topology import Topology, dead_letter_properties
from consumers.core.policy import validate_admission
from consumers.publish import Publisher
from schemas.codec import CONTENT_TYPE
from schemas.enums import ErrorCode, JobState
from schemas.errors import DecodeError
from schemas.messages import MAX_PRIORITY, Event, JobError, JobRequest, JobResult, Timings
from schemas.policy import Policy
from schemas.sequence import validate_sequence, validate_shots

if TYPE_CHECKING:
    from pulser.devices._device_datacls import BaseDevice

SEQUENCE_CACHE_SIZE = 256


@dataclass(frozen=True)
class Sender:
    """Who sent a message, as far as the owner may trust it.

    Attributes:
        user: the AMQP user the message speaks for (None: nobody vouched for it).
        reply_to: the sender's own reply queue, or None when there is none to answer.
        owns_id: whether events about the message's job id may be written (the id is the
            sender's, or nobody's yet); False keeps a stranger from ending someone else's job.
    """

    user: str | None
    reply_to: str | None
    owns_id: bool = True


def check_envelope(properties: Any, user: str | None, topology: Topology) -> JobError | None:
    """Every reason to refuse a message from its AMQP properties alone, first one found."""
    if not getattr(properties, "user_id", None):
        return JobError(
            code=ErrorCode.NOT_AUTHORISED,
            message="user_id required: publish with the AMQP user_id property set",
            field="user_id",
        )
    reply_to = getattr(properties, "reply_to", None)
    if reply_to and not topology.is_reply_queue_of(reply_to, user):
        return JobError(
            code=ErrorCode.INVALID_REPLY_TO,
            message=(
                f"reply_to {str(reply_to)[:200]!r} is not a reply queue of user {user!r} "
                f"(expected {topology.namespace}.reply.{user}.<client-id>)"
            ),
            field="reply_to",
        )
    content_type = getattr(properties, "content_type", None)
    if content_type != CONTENT_TYPE:
        return JobError(
            code=ErrorCode.DECODE_ERROR,
            message=f"content_type {content_type!r} is not {CONTENT_TYPE}",
            field="content_type",
        )
    priority = getattr(properties, "priority", None)
    if priority is not None and not 0 <= priority <= MAX_PRIORITY:
        return JobError(
            code=ErrorCode.INVALID_SCHEMA,
            message=f"AMQP priority {priority} is outside 0-{MAX_PRIORITY}",
            field="priority",
        )
    return None


def sender_of(properties: Any, user: str | None, topology: Topology, owns_id: bool) -> Sender:
    """The `Sender` of a message: its reply queue only if it is `user`'s own."""
    reply_to = getattr(properties, "reply_to", None)
    return Sender(user, reply_to if topology.is_reply_queue_of(reply_to, user) else None, owns_id)


class SequenceChecker:
    """`validate_sequence` with a small cache: sweeps resubmit the same sequences often."""

    def __init__(self) -> None:
        self._cache: OrderedDict[tuple[str, int], JobError | None] = OrderedDict()

    def check(self, sequence: str, device: BaseDevice) -> JobError | None:
        """The structured problem of `sequence` on `device`, or None."""
        key = (hashlib.sha256(sequence.encode()).hexdigest(), id(device))
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        problem = validate_sequence(sequence, device)
        self._cache[key] = problem
        if len(self._cache) > SEQUENCE_CACHE_SIZE:
            self._cache.popitem(last=False)
        return problem


def check_job(
    job: JobRequest,
    routed_class: str,
    user: str | None,
    policy: Policy,
    device: BaseDevice,
    sequences: SequenceChecker,
) -> JobError | None:
    """Every reason to refuse a decoded job, first one found."""
    if job.job_class != routed_class:
        return JobError(
            code=ErrorCode.INVALID_SCHEMA,
            message=f"job_class says {job.job_class!r} but the job was routed to {routed_class!r}",
            field="job_class",
        )
    return (
        validate_admission(policy, job.job_class, user, job.shots)
        or validate_shots(job.shots, device)
        or sequences.check(job.sequence, device)
    )


def canceled_by(job_id: str, by: str | None) -> JobError:
    """Why a job an operator canceled ended CANCELED."""
    return JobError(code=ErrorCode.CANCELED_BY_OPERATOR, message=f"job {job_id} canceled by {by}")


def allocation_ended(allocation: str) -> JobError:
    """Why a job of a Slurm allocation that ended was canceled (or never started)."""
    return JobError(code=ErrorCode.ALLOCATION_ENDED, message=f"Slurm allocation {allocation} ended")


def duplicate_job_id(job_id: str) -> JobError:
    """Why a job reusing another user's job id is refused."""
    return JobError(
        code=ErrorCode.DUPLICATE_JOB_ID,
        message=f"job id {job_id} belongs to another user's job; submit with a new job id",
        field="job_id",
    )


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


def refuse(
    channel: BlockingChannel,
    publisher: Publisher,
    topology: Topology,
    delivery_tag: int,
    properties: Any,
    body: bytes,
    error: JobError,
    origin: str,
    now: datetime,
    sender: Sender,
    job: JobRequest | None = None,
) -> JobResult | None:
    """Dead-letter a message with its reason, answer its sender, log it, then ack it.

    The REJECTED answer goes only to the sender's own reply queue. The `job.rejected` event names
    the job id only when the sender owns it; otherwise the id is kept apart, in the event's data.

    Returns:
        The REJECTED result, when the job could be identified.
    """
    publisher.channel.basic_publish(
        topology.dead_letter_exchange,
        "",
        body,
        dead_letter_properties(properties, error.message, error.code.value, origin),
    )
    job_id = job.job_id if job is not None else properties.message_id
    result = None
    if job_id:
        result = JobResult(
            job_id=job_id,
            state=JobState.REJECTED,
            job_class=job.job_class if job is not None else origin.rsplit(".", 1)[-1],
            shots=job.shots if job is not None else 0,
            error=error,
            timings=Timings(queued_at=job.submitted_at if job is not None else now, ended_at=now),
        )
        publisher.reply(sender.reply_to, result, correlation_id=job_id)
    publisher.event(
        Event(
            topic="job.rejected",
            job_id=job_id if sender.owns_id else None,
            job_class=result.job_class if result is not None else None,
            user=sender.user,
            reason=error.message,
            result=result if sender.owns_id else None,
            data={"message_id": str(job_id)[:200], "code": error.code.value, "origin": origin},
        )
    )
    channel.basic_ack(delivery_tag)
    return result


def dead_letter_unhandled(
    channel: BlockingChannel,
    publisher: Publisher,
    topology: Topology,
    delivery_tag: int,
    properties: Any,
    body: bytes,
    origin: str,
    exc: Exception,
    now: datetime,
) -> None:
    """Dead-letter a delivery whose handling raised, answering INTERNAL to the sender's own
    reply queue; no event names its job id (the message may not be what it claims)."""
    error = JobError(
        code=ErrorCode.INTERNAL,
        message=f"the owner could not handle this message: {exc!r}"[:1000],
    )
    user = getattr(properties, "user_id", None)
    sender = sender_of(properties, user if isinstance(user, str) else None, topology, False)
    refuse(channel, publisher, topology, delivery_tag, properties, body, error, origin, now, sender)
