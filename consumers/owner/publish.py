"""Publishing from the owner: pipelined publishes, confirmed in batches.

The owner's guarantees rest on publisher confirms, but waiting for each confirm before the next
publish costs a round trip per event. So every publish on the owner's channel is sent at once
and tracked by its delivery tag; `confirmed_through` says up to which tag the broker confirmed,
`pump` takes the confirms that arrived (and the refusals: nacked, e.g. a full reply queue, or
returned, unroutable) and `wait_confirmed` waits for all. The shell applies events as it sends
them and acks or replies only once their events are confirmed (`consumers.owner.pending`); it starts
and stops runs at once: if a confirm fails, the owner drops its state and its run and rebuilds
from the log, where only what was confirmed is.

Every event is stamped with the writer's owner id and activation term (fencing) and carries its
job id in a header, so a reader of the stream can index jobs without decoding bodies. The core's
events come with their time and id (`step` stamps them); an event the shell built itself gets
them here, from the owner's clock and a fresh id. The
publisher also counts the stream offset each event gets (`next_offset`): the owner learns where
its records are without reading them back (`consumers.owner.recovery`).

This is the one module that drives pika's channel below its blocking wrapper (the wrapper can
only wait for one confirm at a time); all publishes on the owner's channel must come through it
so the delivery tags it counts stay in step with the broker's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from brokers.connection import properties
from brokers.stream import BATCH_ID_HEADER, JOB_ID_HEADER, JOB_IDS_HEADER
from brokers.topology import Topology
from consumers.errors import OwnerError
from schemas.codec import encode
from schemas.envelope import Event
from schemas.errors import EncodeError
from schemas.events import Topic, is_stamped
from schemas.records import EventRecord
from schemas.wire import Message, new_id, utc_now

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT_S = 30.0
RECORD_EVENTS = 200  # events of one intake written as one stream record
RECORD_BYTES = 512 * 1024  # and at most about this much of their sequences


class PublishFailed(OwnerError):
    """The broker did not confirm an event: the owner's state may be ahead of the log."""


class Publisher:
    """Pipelined, confirmed publishes of events, replies and dead letters on one channel."""

    def __init__(
        self,
        connection: BlockingConnection,
        channel: BlockingChannel,
        topology: Topology,
        user_id: str,
        owner_id: str,
        max_bytes: int,
        snapshot_max_bytes: int | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.channel = channel
        self._clock = clock
        self._connection = connection
        self._impl: Any = channel._impl  # the async channel under the blocking wrapper
        self._impl.confirm_delivery(ack_nack_callback=self._on_confirm)
        self._impl.add_on_return_callback(self._on_return)
        self._topology = topology
        self._user_id = user_id
        self._owner_id = owner_id
        self._max_bytes = max_bytes
        self._snapshot_max_bytes = snapshot_max_bytes or max_bytes
        self._tag = 0
        self._pending: dict[int, str] = {}
        self._failed: dict[str, str] = {}
        self.term: int | None = None
        # The stream offset the next event gets: while it holds the lease the owner is the
        # only writer of its log, so its events land at consecutive offsets after the marker
        # its activation read back (`consumers.owner.recovery`). None: not known (before activation).
        self.next_offset: int | None = None
        self.last_offset = -1  # offset of the last event sent (-1: not known)

    # ---- sending -----------------------------------------------------------------------------

    def send_raw(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        props: pika.BasicProperties,
        mandatory: bool = False,
    ) -> None:
        """Publish bytes as they are (dead letters); confirmed later (`wait_confirmed`, `pump`).

        Raises:
            EncodeError: a property cannot be written (e.g. an id over 255 bytes); nothing sent.
        """
        try:
            self._impl.basic_publish(exchange, routing_key, body, props, mandatory)
        except pika.exceptions.ShortStringTooLong as exc:  # frames are built before any write
            raise EncodeError(f"cannot publish to {routing_key or exchange}: {exc!r}") from exc
        self._tag += 1
        self._pending[self._tag] = props.message_id or ""

    def send(
        self,
        exchange: str,
        routing_key: str,
        message: Message,
        *,
        message_id: str,
        correlation_id: str | None = None,
        headers: Mapping[str, Any] | None = None,
        mandatory: bool = True,
        max_bytes: int | None = None,
    ) -> None:
        """Encode and publish `message`; confirmed later (`wait_confirmed`, `pump`).

        Raises:
            MessageTooLarge: the body exceeds `max_bytes` (default: the message limit).
        """
        body = encode(message, max_bytes or self._max_bytes)
        props = properties(
            message,
            message_id=message_id,
            user_id=self._user_id,
            correlation_id=correlation_id,
            headers=headers,
        )
        self.send_raw(exchange, routing_key, body, props, mandatory)

    def publish(
        self, exchange: str, routing_key: str, message: Message, *, message_id: str
    ) -> None:
        """Publish and wait for the confirm.

        Raises:
            PublishFailed: the broker refused it or could not route it.
        """
        self.send(exchange, routing_key, message, message_id=message_id)
        self.wait_confirmed()
        why = self._failed.pop(message_id, None)
        if why is not None:
            raise PublishFailed(f"{routing_key or exchange}: {why}")

    def event(self, event: Event) -> Event:
        """Stamp and send a state change on the events exchange (and so into the stream)."""
        return self.events([event])[0]

    def stamp(self, event: Event) -> Event:
        """The event as this owner writes it: its owner id and activation term (fencing), and
        a time and id when the shell built it (the core's `step` stamps its own). Stamping an
        event again changes nothing."""
        if event.owner_id == self._owner_id and event.term == self.term and is_stamped(event):
            return event
        update: dict[str, Any] = {"owner_id": self._owner_id, "term": self.term}
        if not is_stamped(event):  # built by the shell, not by the core's `step`
            update |= {"at": self._clock(), "event_id": new_id()}
        return event.model_copy(update=update)

    def events(self, events: list[Event]) -> list[Event]:
        """Stamp and send events as one stream record (one event: an `Event` record, as every
        reader of old logs expects; several: an `EventRecord`, at one offset)."""
        stamped = [self.stamp(event) for event in events]
        if len(stamped) == 1:
            message: Message = stamped[0]
            first = stamped[0]
            headers: dict[str, Any] = {JOB_ID_HEADER: first.job_id} if first.job_id else {}
            topic, message_id = first.topic, first.event_id
        else:
            message = EventRecord(events=stamped)
            job_ids = [e.job_id for e in stamped if e.job_id]
            headers = {JOB_IDS_HEADER: " ".join(job_ids)} if job_ids else {}  # a stream keeps
            # string headers, not arrays; job ids have no spaces
            topic, message_id = stamped[0].topic, f"record-{stamped[0].event_id}"
        created = [e for e in stamped if e.topic == Topic.BATCH_CREATED]
        if created:
            headers[BATCH_ID_HEADER] = str(created[0].data.get("batch_id", ""))
        self.send(
            self._topology.events_exchange,
            topic,
            message,
            message_id=message_id,
            headers=headers or None,
            max_bytes=self._snapshot_max_bytes if topic == Topic.OWNER_SNAPSHOT else None,
        )
        self.last_offset = -1 if self.next_offset is None else self.next_offset
        if self.next_offset is not None:
            self.next_offset += 1
        return stamped

    def reply(
        self,
        reply_to: str,
        message: Message,
        correlation_id: str,
        headers: Mapping[str, Any] | None = None,
    ) -> None:
        """Send an answer to a submitter's or operator's queue (checked by the next `pump`:
        a reply that cannot be delivered is reported there, never retried); `headers` carry
        the trace context of a result."""
        self.send(
            "",
            reply_to,
            message,
            message_id=correlation_id,
            correlation_id=correlation_id,
            headers=headers or None,
        )

    # ---- confirming --------------------------------------------------------------------------

    @property
    def last_tag(self) -> int:
        """Delivery tag of the last publish on this channel (0 before any)."""
        return self._tag

    def confirmed_through(self) -> int:
        """Every publish with a tag up to this one has been confirmed (or refused)."""
        return min(self._pending) - 1 if self._pending else self._tag

    def pump(self) -> dict[str, str]:
        """Take the confirms that arrived, without waiting; refusals since the last call."""
        if self._pending:
            self._connection.process_data_events(time_limit=0)
        failed, self._failed = self._failed, {}
        return failed

    def flush(self, timeout_s: float = CONFIRM_TIMEOUT_S) -> dict[str, str]:
        """Wait until every publish so far is confirmed; the refusals since the last `pump`.

        Raises:
            PublishFailed: confirms did not come within `timeout_s`.
        """
        self.wait_confirmed(timeout_s)
        return self.pump()

    def wait_confirmed(self, timeout_s: float = CONFIRM_TIMEOUT_S) -> None:
        """Wait until every publish so far is confirmed; refusals stay for the next `pump`.

        Raises:
            PublishFailed: confirms did not come within `timeout_s`.
        """
        deadline = time.monotonic() + timeout_s
        while self._pending:
            if time.monotonic() > deadline:
                raise PublishFailed(
                    f"{len(self._pending)} publishes unconfirmed after {timeout_s} s"
                )
            # Confirms reach our callback on the channel underneath the blocking wrapper, which
            # the wrapper does not count as an event to return for: poll in short steps.
            self._connection.process_data_events(time_limit=0.0005)

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        tags = (
            [t for t in self._pending if t <= method.delivery_tag]
            if method.multiple
            else [method.delivery_tag]
        )
        refused = isinstance(method, pika.spec.Basic.Nack)
        for tag in tags:
            message_id = self._pending.pop(tag, None)
            if refused and message_id is not None:
                self._failed[message_id] = "refused by the broker (queue full or rejecting)"

    def _on_return(self, channel: Any, method: Any, props: Any, body: bytes) -> None:
        self._failed.setdefault(props.message_id or "", f"unroutable: {method.reply_text}")


def records(events: list[Event]) -> Iterator[list[Event]]:
    """`events` cut into stream records of up to `RECORD_EVENTS` events and about
    `RECORD_BYTES` of the sequences they carry."""
    chunk: list[Event] = []
    size = 0
    for event in events:
        weight = 1024 + len(str(event.data.get("job", {}).get("sequence", "")))
        if chunk and (len(chunk) >= RECORD_EVENTS or size + weight > RECORD_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(event)
        size += weight
    if chunk:
        yield chunk
