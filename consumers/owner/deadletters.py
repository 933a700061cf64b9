"""`qsched dead requeue`: the owner takes one dead letter back and feeds it to its own intake.

Why the owner and not the operator's CLI: a job must arrive with its submitter's `user_id`,
which RabbitMQ lets only that user publish. The owner dead-lettered the message itself (or the
broker did, keeping the original properties), so it trusts the original user it recorded
(``x-qsched-original-user``; else the message's own `user_id`). It finds the message in
``<ns>.dead`` by message id (the others go back unchanged), gives the job a new id (its old id
ended REJECTED and a job ends once) and hands it to the same path as a fresh delivery from its
original class queue: every check applies again (schema, ACL, the user's own reply queue,
device, limits), and a job still refused is dead-lettered again with its new reason. The dead
letter is acked only when that intake settles it, so nothing is lost on a crash in between.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from brokers.connection import Channel, Properties
from brokers.topology import (
    CODE_HEADER,
    DEATH_HEADER,
    ORIGIN_HEADER,
    ORIGINAL_USER_HEADER,
    REASON_HEADER,
    Topology,
    dead_letter_origin,
    dead_letter_sender,
)
from consumers.core.commands import Command
from consumers.owner.settle import Delivery
from schemas.codec import decode, encode
from schemas.enums import ErrorCode
from schemas.errors import DecodeError
from schemas.jobs import JobError, JobRequest
from schemas.wire import new_id

MAX_SCAN = 10_000  # dead letters looked at to find one


def take(channel: Channel, queue: str, message_id: str) -> tuple[int, Any, bytes] | None:
    """Get the dead letter `message_id` (unacked on `channel`); the others go back."""
    others: list[int] = []
    found = None
    try:
        for _ in range(MAX_SCAN):
            method, props, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                break
            if props.message_id == message_id:
                found = (method.delivery_tag, props, body)
                break
            others.append(method.delivery_tag)
    finally:
        for tag in others:
            channel.basic_nack(tag, requeue=True)
    return found


def resubmission(
    channel: Channel, topology: Topology, taken: tuple[int, Any, bytes], max_bytes: int
) -> tuple[Delivery | None, str]:
    """The dead letter as a fresh job delivery from its class queue, or why it cannot be one."""
    tag, props, body = taken
    origin = dead_letter_origin(props)
    jobs = {topology.job_queue(name) for name in topology.class_names}
    if origin not in jobs:
        return None, f"it came from {origin or 'an unknown queue'}, not a job queue"
    user = dead_letter_sender(props)
    if not user:
        return None, "it names no original sender"
    try:
        job = decode(body, props.type, JobRequest, max_bytes)
    except DecodeError as exc:
        return None, f"it does not decode as a job ({exc})"
    fresh = job.model_copy(update={"job_id": new_id()})
    headers = {
        k: v
        for k, v in (props.headers or {}).items()
        if k not in (REASON_HEADER, CODE_HEADER, ORIGIN_HEADER, ORIGINAL_USER_HEADER, DEATH_HEADER)
    }
    new_props = Properties(
        content_type=props.content_type,
        type=props.type,
        message_id=fresh.job_id,
        reply_to=props.reply_to,
        user_id=user,
        priority=props.priority,
        delivery_mode=2,
        headers=headers,
    )
    delivery = Delivery(channel, tag, new_props, encode(fresh, max_bytes), origin or "")
    return delivery, f"dead letter {props.message_id} requeued as job {fresh.job_id} of {user}"


def prepare(
    given: Command, channel: Channel, topology: Topology, max_bytes: int
) -> tuple[Command, Delivery | None]:
    """Find and turn the dead letter an operator's `dead-requeue` names into a delivery.

    Returns:
        The command with the shell's word on it (`detail`, or `problem` when it cannot be
        requeued) and the delivery to feed to the intake (None when there is none).
    """
    message_id = given.command.message_id or ""
    taken = take(channel, topology.dead_queue, message_id)
    if taken is None:
        problem = JobError(
            code=ErrorCode.UNKNOWN_JOB,
            message=f"no dead letter {message_id} in {topology.dead_queue}",
        )
        return replace(given, problem=problem), None
    delivery, word = resubmission(channel, topology, taken, max_bytes)
    if delivery is None:
        channel.basic_nack(taken[0], requeue=True)
        problem = JobError(
            code=ErrorCode.INVALID_SCHEMA, message=f"dead letter {message_id} not requeued: {word}"
        )
        return replace(given, problem=problem), None
    return replace(given, detail=word), delivery
