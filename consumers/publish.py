"""Publishing from the owner: every publish waits for the broker's confirm.

The owner's guarantees rest on this: an event is confirmed before it is applied, and a delivery
is acked only after its `job.accepted` event is confirmed. Every event is stamped with the
writer's owner id and activation term (fencing) and carries its job id in a header, so a reader
of the stream can index jobs without decoding bodies.
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
from schemas.messages import Event, Message

log = logging.getLogger(__name__)

JOB_ID_HEADER = "x-qsched-job-id"


class Publisher:
    """Confirmed publishes of events and replies on one channel."""

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
        self.term: int | None = None

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
            pika.exceptions.NackError: the broker refused it (e.g. a full queue).
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
        """Stamp and publish a state change on the events exchange (and so into the stream)."""
        stamped = event.model_copy(update={"owner_id": self._owner_id, "term": self.term})
        headers = {JOB_ID_HEADER: stamped.job_id} if stamped.job_id else None
        self.publish(
            self._topology.events_exchange,
            stamped.topic,
            stamped,
            message_id=stamped.event_id,
            headers=headers,
        )
        return stamped

    def reply(self, reply_to: str | None, message: Message, correlation_id: str) -> str | None:
        """Send an answer to a submitter's or operator's queue.

        Returns:
            None when it was delivered, else why not (no queue, gone, or refused by the broker):
            the answer stays in the event log either way; a failed reply is never retried.
        """
        if not reply_to:
            return "no reply queue"
        try:
            self.publish(
                "", reply_to, message, message_id=correlation_id, correlation_id=correlation_id
            )
        except pika.exceptions.UnroutableError:
            return f"reply queue {reply_to} does not exist"
        except pika.exceptions.NackError:
            return f"reply queue {reply_to} refused the message (full or rejecting)"
        return None
