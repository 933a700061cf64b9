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

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from brokers.connection import BROKER_FAILURES, Connection, translate
from brokers.errors import ChannelClosed
from brokers.stream import StreamRecord, close_stream_channel, events_of, read_stream
from brokers.stream import fetch_end_offset as stream_end
from consumers.tools.eventlog.errors import BadBound, NoEventLog
from schemas.codec import DEFAULT_MAX_BYTES
from schemas.envelope import Event

Bound = int | datetime
# Events are stamped before they are published, so their times may be out of log order by the
# length of a confirm; a time bound reads this far past itself before it stops.
CLOCK_SLACK = timedelta(seconds=5)


@dataclass(frozen=True)
class LogRecord:
    """One event read from the log, addressed by its record's stream offset and its index in
    that record (0 unless the record holds several events)."""

    offset: int
    event: Event
    index: int = 0


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
    connection: Connection, stream: str, first_wait_s: float = 2.0, quiet_s: float = 0.3
) -> int | None:
    """The offset of the stream's last record now (None when the stream is empty); see
    `brokers.stream.fetch_end_offset`.

    Raises:
        NoEventLog: the stream is missing or may not be read.
    """
    try:
        return stream_end(connection, stream, first_wait_s, quiet_s)
    except BROKER_FAILURES as exc:
        refused = _refused(exc, stream)
        if refused is None:
            raise
        raise refused from None


def read_log(
    connection: Connection,
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

    def at_end(record: StreamRecord) -> bool:
        return not follow and last_offset is not None and record.offset >= last_offset

    try:
        for record in read_stream(
            channel, stream, attach, stop=at_end, max_wait_s=idle_s, follow=follow
        ):
            for index, event in enumerate(events_of(record, max_bytes)):
                if until is not None and event.at > until + CLOCK_SLACK:
                    return
                in_range = (since is None or event.at >= since) and (
                    until is None or event.at <= until
                )
                if in_range and (not isinstance(start, int) or record.offset >= start):
                    yield LogRecord(record.offset, event, index)
    except BROKER_FAILURES as exc:
        refused = _refused(exc, stream)
        if refused is None:
            raise
        raise refused from None
    finally:
        close_stream_channel(channel)


def _refused(exc: BaseException, stream: str) -> NoEventLog | None:
    """`exc` as the log being missing or not to be read, when the broker closed the channel
    with a reply code (translated at `brokers.connection`); None: another failure."""
    closed = translate(exc, f"read {stream}")
    if isinstance(closed, ChannelClosed) and closed.code is not None:
        return NoEventLog(f"cannot read the event log {stream!r}: {closed.reason}")
    return None
