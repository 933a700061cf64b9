"""Publishing with publisher confirms on the client's py-amqp channel.

Confirms are tracked on the channel's own ``basic.ack``/``basic.nack`` callbacks rather than
kombu's ``confirm_publish``, which waits for each confirm in turn (~2k jobs/s here): a window of
messages is published and their confirms are then awaited together. Every publish is
``mandatory``, so a message for a routing key with no queue comes back (``basic.return``, always
before its ack) and raises `UnknownJobClass` instead of vanishing; a nack (a full class queue with
``x-overflow: reject-publish``) raises `QueueFull`.

One `ConfirmedPublisher` lives as long as its channel; the client makes a new one on reconnect.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import amqp
import kombu

from producers.errors import BrokerBlocked, BrokerUnreachable, QueueFull, UnknownJobClass
from schemas.codec import CONTENT_TYPE, encode
from schemas.messages import Message

log = logging.getLogger("producers.client")
CONFIRM_WINDOW = 1000


@dataclass
class Outgoing:
    """One message to publish: what, where, and its AMQP properties."""

    message: Message
    exchange: str
    routing_key: str
    message_id: str
    priority: int = 0
    headers: dict[str, Any] = field(default_factory=dict)
    expiration_ms: int | None = None


class ConfirmedPublisher:
    """Publishes on a channel in confirm mode and waits for the broker's confirms.

    Args:
        connection: the kombu connection the channel belongs to (its frames are drained here).
        channel: the py-amqp channel (``confirm_select`` is called on it).
        user: the AMQP user, stamped as ``user_id`` (the broker checks it).
        reply_to: the client's reply queue.
        max_message_bytes: encoding limit.
    """

    def __init__(
        self,
        connection: kombu.Connection,
        channel: Any,
        user: str,
        reply_to: str,
        max_message_bytes: int,
    ) -> None:
        self.connection = connection
        self.channel = channel
        self.user = user
        self.reply_to = reply_to
        self.max_message_bytes = max_message_bytes
        self.next_tag = 1
        self.unconfirmed: dict[int, str] = {}
        self.nacked: set[str] = set()
        self.returned: set[str] = set()
        self.blocked: str | None = None  # why the broker blocks our publishes (an alarm)
        channel.confirm_select()
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        channel.events["basic_return"].add(self._on_return)

    def _settle(self, tag: int, multiple: bool) -> list[str]:
        tags = [t for t in self.unconfirmed if t <= tag] if multiple else [tag]
        return [self.unconfirmed.pop(t) for t in tags if t in self.unconfirmed]

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self.nacked.update(self._settle(delivery_tag, multiple))

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        self.returned.add(message.properties.get("message_id", ""))

    def on_blocked(self, reason: str | None = None) -> None:
        """The broker's ``connection.blocked`` (a memory or disk alarm)."""
        self.blocked = reason or "resource alarm"
        log.warning("the broker blocks publishing: %s", self.blocked)

    def on_unblocked(self) -> None:
        """The broker's ``connection.unblocked``."""
        self.blocked = None

    def publish_nowait(self, out: Outgoing) -> None:
        """Publish `out` without waiting for its confirm."""
        body = encode(out.message, self.max_message_bytes)
        # Straight onto the py-amqp channel: kombu's Producer adds per-message work we don't need.
        message = amqp.Message(
            body,
            content_type=CONTENT_TYPE,
            type=out.message.type_name(),
            message_id=out.message_id,
            user_id=self.user,
            timestamp=int(time.time()),
            priority=out.priority,
            reply_to=self.reply_to,
            correlation_id=out.message_id,
            delivery_mode=2,
            application_headers=out.headers,
        )
        if out.expiration_ms is not None:
            message.properties["expiration"] = str(out.expiration_ms)
        self.channel.basic_publish(
            message, exchange=out.exchange, routing_key=out.routing_key, mandatory=True
        )
        self.unconfirmed[self.next_tag] = out.message_id
        self.next_tag += 1

    def publish_window(self, batch: Sequence[Outgoing], timeout_s: float) -> None:
        """Publish `batch` with at most `CONFIRM_WINDOW` unconfirmed, then wait for all confirms.

        Raises:
            BrokerUnreachable: confirms did not arrive within `timeout_s`.
            amqp / kombu connection errors: for the caller to reconnect on.
        """
        for out in batch:
            if len(self.unconfirmed) >= CONFIRM_WINDOW:
                self.wait_confirms(timeout_s, below=CONFIRM_WINDOW // 2)
            self.publish_nowait(out)
        self.wait_confirms(timeout_s)

    def wait_confirms(self, timeout_s: float, below: int = 1) -> None:
        """Process broker frames until fewer than `below` publishes are unconfirmed.

        Raises:
            BrokerBlocked: that did not happen while the broker blocks publishing (an alarm).
            BrokerUnreachable: that did not happen within `timeout_s`.
        """
        deadline = time.monotonic() + timeout_s
        while len(self.unconfirmed) >= below:
            left = deadline - time.monotonic()
            if left <= 0:
                if self.blocked is not None:
                    raise BrokerBlocked(
                        f"{len(self.unconfirmed)} publishes not confirmed within {timeout_s} s: "
                        f"the broker blocks publishing ({self.blocked}); they may still arrive "
                        "once the alarm clears, and sending them again (same job ids) is safe"
                    )
                raise BrokerUnreachable(
                    f"{len(self.unconfirmed)} publishes not confirmed within {timeout_s} s"
                )
            try:
                self.connection.drain_events(timeout=min(left, 1.0))
            except TimeoutError:
                continue

    def raise_refusals(self, window: Sequence[Outgoing], class_names: Sequence[str]) -> None:
        """Raise for the first returned (no queue) or nacked (queue full) message of `window`.

        Raises:
            UnknownJobClass: a message had no queue to go to.
            QueueFull: the broker refused a message.
        """
        returned = [o for o in window if o.message_id in self.returned]
        nacked = [o for o in window if o.message_id in self.nacked]
        self.returned.difference_update(o.message_id for o in window)
        self.nacked.difference_update(o.message_id for o in window)
        if returned:
            key = returned[0].routing_key
            raise UnknownJobClass(
                f"no queue for {key!r} on {returned[0].exchange}; classes: {', '.join(class_names)}"
            )
        if nacked:
            raise QueueFull(
                f"queue for {nacked[0].routing_key!r} is full; the broker refused {len(nacked)} job(s)"
            )
