"""The one place that acks and dead-letters deliveries.

A delivery is acked once what it caused is confirmed in the log (`job.accepted`, a control
event, or a refusal), and a refused delivery is first copied to the dead-letter exchange with
its reason, code and origin in headers, so nothing a client sends vanishes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from brokers.connection import BROKER_FAILURES, Channel, Properties, ack_later
from brokers.topology import CODE_HEADER, REASON_HEADER, Topology, dead_letter_properties
from consumers.owner.publish import Publisher
from schemas.enums import ErrorCode
from schemas.jobs import JobError

log = logging.getLogger(__name__)
UNSENDABLE: tuple[type[BaseException], ...] = (*BROKER_FAILURES, ValueError, TypeError)


@dataclass(frozen=True)
class Delivery:
    """One message taken from a queue, until it is settled."""

    channel: Channel
    tag: int
    properties: Any
    body: bytes
    queue: str


def collector(into: list[Delivery], queue: str) -> Callable[..., None]:
    """A pika consumer callback that only collects `queue`'s deliveries into `into` (the owner's
    loop handles them in order)."""

    def on_message(channel: Channel, method: Any, props: Any, body: bytes) -> None:
        into.append(Delivery(channel, method.delivery_tag, props, body, queue))

    return on_message


def handle_safely(
    publisher: Publisher,
    topology: Topology,
    delivery: Delivery,
    handle: Callable[[Delivery], None],
) -> None:
    """Handle one delivery; any failure but the broker's dead-letters it, never the owner."""
    try:
        handle(delivery)
    except BROKER_FAILURES:
        raise
    except Exception as exc:  # one bad message never stops the owner
        log.exception("could not handle a delivery from %s", delivery.queue)
        error = JobError(code=ErrorCode.INTERNAL, message=f"owner could not handle it: {exc!r}")
        settle_after_failure(publisher, topology, delivery, error)


def ack(delivery: Delivery) -> None:
    """The delivery's effect is in the log: the broker may forget it (sent with the loop's next
    poll; a crash before then only redelivers a job the log already has, which it recognises)."""
    ack_later(delivery.channel, delivery.tag)


def dead_letter(
    publisher: Publisher, topology: Topology, delivery: Delivery, error: JobError
) -> None:
    """Copy the delivery to the dead-letter exchange with its reason (confirmed at the
    publisher's confirms; the caller acks the delivery after that)."""
    try:
        props = dead_letter_properties(
            delivery.properties, error.message, error.code.value, delivery.queue
        )
    except (TypeError, ValueError) as exc:  # properties too odd to copy: keep the body only
        log.warning("dead-lettering %s without its properties: %r", delivery.queue, exc)
        props = Properties(
            delivery_mode=2,
            headers={REASON_HEADER: error.message[:1000], CODE_HEADER: error.code.value},
        )
    publisher.send_raw(topology.dead_letter_exchange, "", delivery.body, props)


def settle_after_failure(
    publisher: Publisher, topology: Topology, delivery: Delivery, error: JobError
) -> None:
    """Last resort when handling a delivery raised: dead-letter it with the reason if at all
    possible, else reject it to the queue's own dead-letter exchange (never requeue a poison)."""
    try:
        dead_letter(publisher, topology, delivery, error)
        publisher.wait_confirmed()  # refusals of other publishes stay for the shell
        ack(delivery)
    except UNSENDABLE as exc:
        log.error(
            "could not dead-letter a delivery from %s (%r); rejecting it", delivery.queue, exc
        )
        with contextlib.suppress(*BROKER_FAILURES):
            delivery.channel.basic_nack(delivery.tag, requeue=False)
