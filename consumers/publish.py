"""Publishing from the owner: every publish waits for the broker's confirm.

The owner's ordering guarantees rest on this: a final event and the reply are confirmed before
the job's durable copy is removed, so a crash at any point leaves the job either still queued or
answered.
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
        self._gone: set[str] = set()

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
            False when there is no reply queue (gone or never given); the answer stays in the log.
        """
        if not reply_to:
            return False
        try:
            self.publish(
                "", reply_to, message, message_id=correlation_id, correlation_id=correlation_id
            )
        except pika.exceptions.UnroutableError:
            # Progress goes to the same queue every few shots: say it once per queue.
            if reply_to not in self._gone:
                self._gone.add(reply_to)
                log.warning("reply queue %s is gone; answers to it stay in the event log", reply_to)
            return False
        return True
