"""Reading a RabbitMQ stream (the event log) over AMQP 0.9.1.

A stream is read by a consumer with ``x-stream-offset`` (``first``, ``last``, ``next``, a numeric
offset, or a timestamp), a prefetch, and manual acks. AMQP 0.9.1 has no "end of stream" signal,
so a reader stops at a sentinel message (the caller's `stop` predicate, e.g. a marker event it
published itself) or, failing that, after `idle_timeout_s` without deliveries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import pika
from pika.adapters.blocking_connection import BlockingChannel

from brokers.connection import ack_later

Offset = int | str | datetime
STREAM_PREFETCH = 500


@dataclass(frozen=True)
class StreamRecord:
    """One message read from a stream, with its offset."""

    offset: int
    properties: pika.BasicProperties
    body: bytes


def read_stream(
    channel: BlockingChannel,
    queue: str,
    offset: Offset = "first",
    *,
    idle_timeout_s: float = 0.5,
    stop: Callable[[StreamRecord], bool] | None = None,
    max_wait_s: float | None = None,
) -> Iterator[StreamRecord]:
    """Yield records from `offset` on until `stop` says so or the stream goes quiet.

    Args:
        channel: a channel this reader may use exclusively while iterating.
        queue: the stream queue.
        offset: where to attach (see module docstring).
        idle_timeout_s: stop after this long without a delivery (when `stop` is None).
        stop: stop after the first record for which this returns True (it is yielded).
        max_wait_s: with `stop`, give up after this long without a delivery.
    """
    channel.basic_qos(prefetch_count=STREAM_PREFETCH)
    wait_s = idle_timeout_s if stop is None else (max_wait_s or 30.0)
    arguments = {"x-stream-offset": offset}
    try:
        for method, props, body in channel.consume(
            queue, arguments=arguments, inactivity_timeout=wait_s
        ):
            if method is None:
                return
            ack_later(channel, method.delivery_tag)
            record = StreamRecord(
                int((props.headers or {}).get("x-stream-offset", -1)), props, body
            )
            yield record
            if stop is not None and stop(record):
                return
    finally:
        if channel.is_open:
            _settle_buffered(channel, queue, arguments, wait_s)
            _drop_late_deliveries(channel)
            channel.cancel()


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
    no-ack makes pika drop them instead; a stream keeps no per-message state to settle.
    """
    generator = channel._queue_consumer_generator  # the consumer `channel.consume` opened
    if generator is not None:
        channel._impl._consumers_with_noack.add(generator.consumer_tag)


def _settle_buffered(
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
