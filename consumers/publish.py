"""Publishing from the owner: every publish waits for the broker's confirm.

The owner's ordering guarantees rest on this: a final event and the reply are confirmed before
the job's durable copy is removed, so a crash at any point leaves the job either still queued or
answered.

Replies are the exception to "a refused publish is an error": a reply queue belongs to a
submitter, who may have deleted it or declared it to refuse messages. A reply the broker returns
or nacks is logged as a ``job.reply_failed`` / ``control.reply_failed`` event and dropped, never
retried and never fatal; the answer stays in the event log.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from brokers.connection import properties
from brokers.topology import Topology
from schemas.codec import encode
from schemas.messages import ControlReply, Event, JobProgress, Message

log = logging.getLogger(__name__)


class Publisher:
    """Confirmed publishes of events, replies and records on one channel."""

    def __init__(
        self,
        channel: BlockingChannel,
        topology: Topology,
        user_id: str,
        owner_id: str,
        max_bytes: int,
    ) -> None:
        channel.confirm_delivery()
        self.channel = channel
        self._topology = topology
        self._user_id = user_id
        self._owner_id = owner_id
        self._max_bytes = max_bytes

    def publish(
        self,
        exchange: str,
        routing_key: str,
        message: Message,
        *,
        message_id: str,
        priority: int = 0,
        correlation_id: str | None = None,
        reply_to: str | None = None,
        headers: Mapping[str, Any] | None = None,
        mandatory: bool = True,
    ) -> None:
        """Encode and publish `message`; returns once the broker confirmed it.

        Raises:
            pika.exceptions.UnroutableError: `mandatory` and no queue took it.
        """
        body = encode(message, self._max_bytes)
        props = properties(
            message,
            message_id=message_id,
            user_id=self._user_id,
            priority=priority,
            correlation_id=correlation_id,
            reply_to=reply_to,
            headers=headers,
        )
        self.channel.basic_publish(exchange, routing_key, body, props, mandatory=mandatory)

    def event(self, event: Event) -> Event:
        """Publish a state change on the events exchange (and so into the stream)."""
        stamped = event.model_copy(update={"owner_id": self._owner_id})
        self.publish(
            self._topology.events_exchange, stamped.topic, stamped, message_id=stamped.event_id
        )
        return stamped

    def reply(self, reply_to: str | None, message: Message, correlation_id: str) -> bool:
        """Send an answer to a submitter's or operator's queue.

        Returns:
            False when there is no reply queue or the broker refused the reply (no such queue, or
            the queue rejects publishes); the answer stays in the log.
        """
        if not reply_to:
            return False
        try:
            self.publish(
                "", reply_to, message, message_id=correlation_id, correlation_id=correlation_id
            )
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
            unroutable = isinstance(exc, pika.exceptions.UnroutableError)
            why = "no such queue" if unroutable else "the queue refused it (nack)"
            log.warning("reply %s to %s dropped: %s", correlation_id, reply_to, why)
            if not isinstance(message, JobProgress):  # progress comes often; the final one counts
                kind = "control" if isinstance(message, ControlReply) else "job"
                self.event(
                    Event(
                        topic=f"{kind}.reply_failed",
                        reason=f"reply to {reply_to} dropped: {why}",
                        data={"correlation_id": correlation_id, "reply_to": reply_to},
                    )
                )
            return False
        return True
