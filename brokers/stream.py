"""Reading a RabbitMQ stream (the event log) over AMQP 0.9.1: every reader of the log comes
through here (the owner's replay and reads by offset, the event tools, the client's scans).

A stream is read by a consumer with ``x-stream-offset`` (``first``, ``last``, ``next``, a numeric
offset, or a timestamp), a prefetch, and manual acks. AMQP 0.9.1 has no "end of stream" signal,
so a reader stops at a sentinel message (the caller's `stop` predicate, e.g. a marker event it
published itself) or, failing that, after `idle_timeout_s` without deliveries.

A record holds one event or several (`schemas.records.EventRecord`); `events_of` decodes either,
so an event is addressed by (record offset, index). Logs written before records could hold
several events need no migration: their one-event records read as index 0.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from brokers.connection import ack_later
from schemas.codec import DEFAULT_MAX_BYTES, decode_any
from schemas.envelope import Event
from schemas.errors import DecodeError
from schemas.records import EventRecord

Offset = int | str | datetime
STREAM_PREFETCH = 500
ACK_EVERY = (
    100  # `read_stream` acks up to this many records with one ack (multiple): credit, not state
)
JOB_ID_HEADER = "x-qsched-job-id"  # the job a one-event record is about
JOB_IDS_HEADER = "x-qsched-job-ids"  # the jobs an `EventRecord`'s events are about, spaced
BATCH_ID_HEADER = "x-qsched-batch-id"  # a record holding a batch's `batch.created`


@dataclass(frozen=True)
class StreamRecord:
    """One message read from a stream, with its offset."""

    offset: int
    properties: pika.BasicProperties
    body: bytes
    routing_key: str = ""

    @property
    def headers(self) -> dict[str, Any]:
        """The record's AMQP headers ({} when it has none)."""
        headers = self.properties.headers
        return headers if isinstance(headers, dict) else {}


def events_of(record: StreamRecord, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Event]:
    """The events a record holds, in order: one (an `Event` record) or several (an
    `EventRecord`); none for anything else (the log is read, never judged, here). The event at
    index i of the record at offset n is addressed as (n, i)."""
    try:
        message = decode_any(record.body, record.properties.type, max_bytes)
    except DecodeError:
        return []
    if isinstance(message, Event):
        return [message]
    if isinstance(message, EventRecord):
        return list(message.events)
    return []


def job_ids_of(record: StreamRecord) -> list[str]:
    """The jobs a record's events are about, from its headers (no decoding)."""
    headers = record.headers
    one = headers.get(JOB_ID_HEADER)
    many = headers.get(JOB_IDS_HEADER)
    ids = [str(one)] if one else []
    if isinstance(many, bytes | str):  # space-separated: a stream drops array headers
        ids += (many.decode() if isinstance(many, bytes) else many).split()
    return ids


def consume(
    connection: BlockingConnection,
    stream: str,
    offset: Offset,
    on_record: Callable[[StreamRecord], None],
    prefetch: int = STREAM_PREFETCH,
) -> BlockingChannel:
    """Start a consumer on a channel of its own: `on_record` gets every record from `offset`
    on (acked at once) while the caller lets the connection process events; close the channel
    with `close_stream_channel` to stop."""
    channel = connection.channel()
    channel.basic_qos(prefetch_count=prefetch)

    def deliver(ch: Any, method: Any, props: Any, body: bytes) -> None:
        ack_later(ch, method.delivery_tag)
        on_record(StreamRecord(_offset_of(props), props, body, method.routing_key))

    channel.basic_consume(stream, deliver, arguments={"x-stream-offset": offset})
    return channel


def scan(
    connection: BlockingConnection,
    stream: str,
    start: int,
    visit: Callable[[StreamRecord], bool],
    *,
    prefetch: int = 100,
    timeout_s: float = 5.0,
) -> bool:
    """Hand `visit` each record from offset `start` on, in order, until it returns True.

    The owner's reads by offset (a sequence, a job's history or result) go through here: they
    run inside its loop, on a channel of their own, bounded by `timeout_s`. Records before
    `start` (a stream consumer attaches at the first record of the chunk holding it) are
    skipped; once `visit` said stop, the records still in flight are dropped with the channel.

    Returns:
        Whether `visit` stopped the scan (False: `timeout_s` passed first).
    """
    done = False
    channel = connection.channel()
    channel.basic_qos(prefetch_count=prefetch)

    def on_record(ch: Any, method: Any, props: Any, body: bytes) -> None:
        nonlocal done
        if done:
            return  # no ack: the stream sends no more (closing the channel drops these)
        ack_later(ch, method.delivery_tag)
        record = StreamRecord(_offset_of(props), props, body, method.routing_key)
        if record.offset >= start:
            done = visit(record)

    channel.basic_consume(stream, on_record, arguments={"x-stream-offset": start})
    deadline = time.monotonic() + timeout_s
    try:
        while not done and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.05)
    finally:
        close_stream_channel(channel)
    return done


def _offset_of(props: pika.BasicProperties) -> int:
    headers = props.headers if isinstance(props.headers, dict) else {}
    return int(headers.get("x-stream-offset", -1))


def read_stream(
    channel: BlockingChannel,
    queue: str,
    offset: Offset = "first",
    *,
    idle_timeout_s: float = 0.5,
    stop: Callable[[StreamRecord], bool] | None = None,
    max_wait_s: float | None = None,
    follow: bool = False,
    prefetch: int = STREAM_PREFETCH,
) -> Iterator[StreamRecord]:
    """Yield records from `offset` on until `stop` says so or the stream goes quiet.

    Args:
        channel: a channel this reader may use exclusively while iterating.
        queue: the stream queue.
        offset: where to attach (see module docstring).
        idle_timeout_s: stop after this long without a delivery (when `stop` is None).
        stop: stop after the first record for which this returns True (it is yielded).
        max_wait_s: with `stop`, give up after this long without a delivery.
        follow: never give up for want of deliveries (a live tail; the caller stops).
        prefetch: records in flight to this reader (their acks go out `ACK_EVERY` at a time, or
            `prefetch` at a time when that is fewer, so the broker never waits for credit).
    """
    channel.basic_qos(prefetch_count=prefetch)
    wait_s = idle_timeout_s if stop is None else (max_wait_s or 30.0)
    if follow:
        wait_s = 1.0
    arguments = {"x-stream-offset": offset}
    ack_every = max(1, min(ACK_EVERY, prefetch))
    unacked = 0  # the last delivery tag handed out and not acked yet (0: none)
    since_ack = 0
    try:
        for method, props, body in channel.consume(
            queue, arguments=arguments, inactivity_timeout=wait_s
        ):
            if method is None:
                if unacked:  # a quiet stream: give back the credit of what was read
                    ack_later(channel, unacked, multiple=True)
                    unacked = since_ack = 0
                if follow:
                    continue
                return
            unacked, since_ack = method.delivery_tag, since_ack + 1
            if since_ack == ack_every:
                ack_later(channel, unacked, multiple=True)
                unacked = since_ack = 0
            record = StreamRecord(_offset_of(props), props, body, method.routing_key)
            yield record
            if stop is not None and stop(record):
                return
    finally:
        if channel.is_open:
            if unacked:
                ack_later(channel, unacked, multiple=True)
            _ack_buffered(channel, queue, arguments, wait_s)
            _drop_late_deliveries(channel)
            channel.cancel()


def fetch_end_offset(
    connection: BlockingConnection, stream: str, first_wait_s: float = 2.0, quiet_s: float = 0.3
) -> int | None:
    """The offset of the stream's last record now (None when the stream is empty).

    AMQP 0.9.1 has no "end of stream": a short consumer attached at ``last`` receives the
    stream's last chunk, and the highest offset it sees is the end.

    Raises:
        pika.exceptions.ChannelClosedByBroker: the stream is missing or may not be read.
    """
    last = fetch_last_record(connection, stream, first_wait_s, quiet_s)
    return last.offset if last is not None else None


def fetch_last_record(
    connection: BlockingConnection, stream: str, first_wait_s: float = 2.0, quiet_s: float = 0.3
) -> StreamRecord | None:
    """The stream's last record now (None when the stream is empty), read without removing
    anything: a short consumer attached at ``last`` receives the stream's last chunk, and the
    record with the highest offset in it is the last (`fetch_end_offset`).

    Args:
        connection: where to open the channel this call uses.
        stream: the stream queue.
        first_wait_s: how long to wait for the last chunk's first record.
        quiet_s: how long to wait for more records of that chunk after one arrived.

    Raises:
        pika.exceptions.ChannelClosedByBroker: the stream is missing or may not be read.
    """
    channel = connection.channel()
    channel.basic_qos(prefetch_count=STREAM_PREFETCH)
    last: StreamRecord | None = None
    first_deadline = time.monotonic() + first_wait_s
    stop_deadline = first_deadline + 2.0  # a busy log never goes quiet: stop anyway
    try:
        for method, props, body in channel.consume(
            stream, arguments={"x-stream-offset": "last"}, inactivity_timeout=quiet_s
        ):
            if method is None:
                if last is not None or time.monotonic() > first_deadline:
                    break
                continue
            ack_later(channel, method.delivery_tag)
            record = StreamRecord(_offset_of(props), props, body, method.routing_key)
            if last is None or record.offset > last.offset:
                last = record
            if time.monotonic() > stop_deadline:
                break
    finally:
        close_stream_channel(channel)
    return last


def close_stream_channel(channel: BlockingChannel) -> None:
    """Close a channel that consumes a stream without rejecting what it buffered.

    pika's blocking channel nacks (requeues) deliveries it buffered but did not hand out when its
    consumer is cancelled or the channel closed, and a stream answers a nack by closing the whole
    connection. Closing the channel underneath the blocking wrapper releases them quietly.
    """
    impl = channel._impl  # the async channel under the blocking wrapper
    if impl.is_open:
        impl.close()
    connection = channel.connection
    deadline_ticks = 100
    while not impl.is_closed and deadline_ticks:
        connection.process_data_events(time_limit=0.01)
        deadline_ticks -= 1


def _drop_late_deliveries(channel: BlockingChannel) -> None:
    """Deliveries still in flight when the consumer is cancelled are dropped, not rejected.

    pika's async channel rejects deliveries that arrive for a consumer it is cancelling, and a
    stream answers ``basic.reject`` by closing the connection (540). Marking the consumer as
    no-ack makes pika drop them instead; a stream keeps no per-message state to ack.
    """
    generator = channel._queue_consumer_generator  # the consumer `channel.consume` opened
    if generator is not None:
        channel._impl._consumers_with_noack.add(generator.consumer_tag)


def _ack_buffered(
    channel: BlockingChannel, queue: str, arguments: dict[str, Offset], wait_s: float
) -> None:
    """Ack the deliveries pika buffered past the reader's stop.

    `BlockingChannel.cancel` rejects buffered deliveries, and a stream answers ``basic.reject``
    by closing the whole connection (540 NOT_IMPLEMENTED). Calling `consume` again with the same
    arguments hands back the same consumer's buffer, so they can be acked instead.
    """
    while channel.get_waiting_message_count():
        method, _, _ = next(channel.consume(queue, arguments=arguments, inactivity_timeout=wait_s))
        if method is not None:
            channel.basic_ack(method.delivery_tag)
