"""Reading the event log (a RabbitMQ stream) between two bounds, or following it live.

AMQP 0.9.1 has no "end of stream" signal, and an operator's reader must not publish a marker
(it may only have read access). So "up to now" is the offset of the last record when reading
starts: a short consumer attached at ``last`` receives the stream's last chunk, and the highest
offset it sees is the end. The main read stops there, or, should the records never come (the
stream was truncated under it), after `idle_s` without a delivery.

Each read has a channel of its own and closes it when done without rejecting what it buffered
(`brokers.stream.close_stream_channel`): a stream answers a reject by closing the connection.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pika.exceptions
from pika.adapters.blocking_connection import BlockingConnection

from brokers.stream import close_stream_channel
from consumers.eventlog.errors import BadBound, NoEventLog
from schemas.codec import DEFAULT_MAX_BYTES, decode_any
from schemas.errors import DecodeError
from schemas.messages import Event

Bound = int | datetime
PREFETCH = 1000
# Acks only move the consumer's credit on a stream; one per this many records (``multiple``)
# instead of one per record, which would cost a socket write each.
ACK_EVERY = PREFETCH // 4
# Events are stamped before they are published, so their times may be out of log order by the
# length of a confirm; a time bound reads this far past itself before it stops.
CLOCK_SLACK = timedelta(seconds=5)


@dataclass(frozen=True)
class LogRecord:
    """One event read from the log, with its stream offset."""

    offset: int
    event: Event


def parse_bound(text: str | None) -> Bound | None:
    """A ``--from``/``--to`` value: a stream offset (digits) or an ISO 8601 time (UTC if naive).

    Raises:
        BadBound: neither.
    """
    if text is None or text == "":
        return None
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadBound(f"{text!r} is neither a stream offset nor an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def fetch_end_offset(
    connection: BlockingConnection, stream: str, first_wait_s: float = 2.0, settle_s: float = 0.3
) -> int | None:
    """The offset of the stream's last record now (None when the stream is empty).

    Args:
        connection: where to open the channel this call uses.
        stream: the stream queue.
        first_wait_s: how long to wait for the last chunk's first record.
        settle_s: how long to wait for more records of that chunk after one arrived.
    """
    channel = connection.channel()
    channel.basic_qos(prefetch_count=PREFETCH)
    end: int | None = None
    first_deadline = time.monotonic() + first_wait_s
    settle_deadline = first_deadline + 2.0  # a busy log never goes quiet: stop anyway
    try:
        for method, props, _body in channel.consume(
            stream, arguments={"x-stream-offset": "last"}, inactivity_timeout=settle_s
        ):
            if method is None:
                if end is not None or time.monotonic() > first_deadline:
                    break
                continue
            offset = int((props.headers or {}).get("x-stream-offset", -1))
            end = offset if end is None else max(end, offset)
            if time.monotonic() > settle_deadline:
                break
    except pika.exceptions.ChannelClosedByBroker as exc:
        raise NoEventLog(f"cannot read the event log {stream!r}: {exc.reply_text}") from None
    finally:
        close_stream_channel(channel)
    return end


def read_log(
    connection: BlockingConnection,
    stream: str,
    start: Bound | None = None,
    end: Bound | None = None,
    *,
    follow: bool = False,
    idle_s: float = 10.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Iterator[LogRecord]:
    """Events from `start` (default: the first) to `end` (default: the last one now), in order.

    Args:
        connection: where to open the channel this read uses.
        stream: the stream queue.
        start: first offset, or the earliest event time.
        end: last offset, or the latest event time.
        follow: keep reading new events as they come (ignores an `end` of None).
        idle_s: when not following, give up after this long without a delivery.
        max_bytes: decoding limit.
    """
    last_offset: int | None = end if isinstance(end, int) else None
    if not follow and last_offset is None:
        last_offset = fetch_end_offset(connection, stream)
        if last_offset is None:
            return
    if isinstance(start, int) and last_offset is not None and start > last_offset:
        return
    until = end if isinstance(end, datetime) else None
    since = start if isinstance(start, datetime) else None
    # A time offset attaches at the chunk holding that second; records before it are filtered.
    attach: int | str | datetime = "first" if start is None else start
    if isinstance(attach, datetime):
        attach = attach.replace(microsecond=0)
    channel = connection.channel()
    channel.basic_qos(prefetch_count=PREFETCH)
    unacked = 0
    try:
        for method, props, body in channel.consume(
            stream,
            arguments={"x-stream-offset": attach},
            inactivity_timeout=1.0 if follow else idle_s,
        ):
            if method is None:
                if follow:
                    continue
                return
            unacked += 1
            if follow or unacked >= ACK_EVERY:
                channel.basic_ack(method.delivery_tag, multiple=True)
                unacked = 0
            offset = int((props.headers or {}).get("x-stream-offset", -1))
            event = _decode(body, props.type, max_bytes)
            if event is not None:
                if until is not None and event.at > until + CLOCK_SLACK:
                    return
                in_range = (since is None or event.at >= since) and (
                    until is None or event.at <= until
                )
                if in_range and (not isinstance(start, int) or offset >= start):
                    yield LogRecord(offset, event)
            if not follow and last_offset is not None and offset >= last_offset:
                return
    except pika.exceptions.ChannelClosedByBroker as exc:
        raise NoEventLog(f"cannot read the event log {stream!r}: {exc.reply_text}") from None
    finally:
        close_stream_channel(channel)


def _decode(body: bytes, type_name: str | None, max_bytes: int) -> Event | None:
    """The event in a record, or None for anything else (the log is read, never judged, here)."""
    try:
        message = decode_any(body, type_name, max_bytes)
    except DecodeError:
        return None
    return message if isinstance(message, Event) else None
