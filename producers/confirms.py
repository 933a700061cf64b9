"""Publishing with publisher confirms on the client's py-amqp channel.

Confirms are tracked on the channel's own ``basic.ack``/``basic.nack`` callbacks rather than
kombu's ``confirm_publish``, which waits for each confirm in turn (~2k jobs/s here): up to
`CONFIRM_WINDOW` messages are in flight, the window refilled as acks come in, and the last
confirms are awaited together. Every publish is ``mandatory``, so a message for a routing key
with no queue comes back (``basic.return``, always before its ack) and raises `UnknownJobClass`
instead of vanishing; a nack (a full class queue with ``x-overflow: reject-publish``) raises
`QueueFull`.

The frames are built by `producers.frames` and written to py-amqp's transport a few dozen
messages per ``sendall`` (py-amqp's ``basic_publish`` costs a write and a read syscall per
message, most of a submit's time); reading acks, returns and ``connection.blocked`` stays
py-amqp's. One `ConfirmedPublisher` lives as long as its channel; the client makes a new one on
reconnect.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import amqp.exceptions
import kombu

from producers.errors import BrokerBlocked, BrokerUnreachable, QueueFull, UnknownJobClass
from producers.frames import PublishFrames
from schemas.codec import CONTENT_TYPE, encode
from schemas.wire import Message, utc_now

log = logging.getLogger("producers.client")
CONFIRM_WINDOW = 1000
FLUSH_BYTES = 64 * 1024  # frames gathered before one write to the socket


@dataclass(slots=True)
class Outgoing:
    """One message to publish: what, where, and its AMQP properties.

    `update` holds JSON-mode values that replace fields of the encoded body (the batch's
    ``submitted_at``), so that stamping a job the client built does not copy the model.
    """

    message: Message
    exchange: str
    routing_key: str
    message_id: str
    priority: int = 0
    headers: dict[str, Any] = field(default_factory=dict)
    expiration_ms: int | None = None
    update: Mapping[str, Any] | None = None


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
        self.unconfirmed: OrderedDict[int, str] = OrderedDict()  # delivery tag -> message id
        self.nacked: set[str] = set()
        self.returned: set[str] = set()
        self.blocked: str | None = None  # why the broker blocks our publishes (an alarm)
        # message id -> when its ack arrived; each `publish_window` takes its own messages' out
        # (a callback run while it waits may publish a window of its own meanwhile)
        self.confirmed_at: dict[str, datetime] = {}
        self.transport = connection.connection.transport
        self.frames = PublishFrames(
            channel.channel_id, connection.connection.frame_max, CONTENT_TYPE, reply_to, user
        )
        channel.confirm_select()
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        channel.events["basic_return"].add(self._on_return)

    def _resolved_through(self, tag: int, multiple: bool) -> list[str]:
        unconfirmed = self.unconfirmed
        if not multiple:
            message_id = unconfirmed.pop(tag, None)
            return [] if message_id is None else [message_id]
        resolved = []
        while unconfirmed:  # tags are in publish order: resolve from the oldest up to `tag`
            oldest = next(iter(unconfirmed))
            if oldest > tag:
                break
            resolved.append(unconfirmed.pop(oldest))
        return resolved

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        resolved = self._resolved_through(delivery_tag, multiple)
        if resolved:
            now = utc_now()  # one clock read per ack frame; a frame often acks hundreds
            for message_id in resolved:
                self.confirmed_at[message_id] = now

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self.nacked.update(self._resolved_through(delivery_tag, multiple))

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        self.returned.add(message.properties.get("message_id", ""))

    def on_blocked(self, reason: str | None = None) -> None:
        """The broker's ``connection.blocked`` (a memory or disk alarm)."""
        self.blocked = reason or "resource alarm"
        log.warning("the broker blocks publishing: %s", self.blocked)

    def on_unblocked(self) -> None:
        """The broker's ``connection.unblocked``."""
        self.blocked = None

    def _frames(self, out: Outgoing) -> list[bytes]:
        return self.frames.publish(
            encode(out.message, self.max_message_bytes, out.update),
            out.exchange,
            out.routing_key,
            message_id=out.message_id,
            type_name=out.message.type_name(),
            priority=out.priority,
            timestamp=int(time.time()),
            headers=out.headers,
            expiration_ms=out.expiration_ms,
        )

    def _write(self, pending: list[bytes]) -> None:
        """Write the gathered frames in one go (each publish's frames whole, in order)."""
        if not pending:
            return
        if not self.channel.is_open:
            raise amqp.exceptions.RecoverableConnectionError("publish: the channel is closed")
        self.transport.write(b"".join(pending))
        pending.clear()

    def publish_window(self, batch: Sequence[Outgoing], timeout_s: float) -> dict[str, datetime]:
        """Publish `batch` with at most `CONFIRM_WINDOW` unconfirmed, then wait for all confirms.

        Returns:
            When the broker acked each message, by message id (a nacked one is not there).

        Raises:
            BrokerUnreachable: confirms did not arrive within `timeout_s`.
            EncodeError, MessageTooLarge: a message cannot be encoded (those before it are sent).
            amqp / kombu connection errors: for the caller to reconnect on.
        """
        pending: list[bytes] = []
        size = 0
        for out in batch:
            if len(self.unconfirmed) >= CONFIRM_WINDOW:
                self._write(pending)
                size = 0
                self.wait_confirms(timeout_s, below=CONFIRM_WINDOW)  # refilled ack by ack
            try:
                frames = self._frames(out)
            except Exception:
                self._write(pending)  # every tag counted so far must reach the broker
                raise
            pending += frames
            size += sum(map(len, frames))
            self.unconfirmed[self.next_tag] = out.message_id
            self.next_tag += 1
            if size >= FLUSH_BYTES:
                self._write(pending)
                size = 0
        self._write(pending)
        self.wait_confirms(timeout_s)
        taken = {o.message_id: self.confirmed_at.pop(o.message_id, None) for o in batch}
        return {message_id: at for message_id, at in taken.items() if at is not None}

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
