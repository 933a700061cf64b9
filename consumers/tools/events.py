"""Reading the event log back, for tools that replay or export it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from brokers.connection import Channel
from brokers.stream import Offset, StreamRecord, events_of, read_stream
from schemas.codec import DEFAULT_MAX_BYTES
from schemas.envelope import Event


def read_events(
    channel: Channel,
    stream: str,
    offset: Offset = "first",
    until_event_id: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Iterator[Event]:
    """Events from `offset` on, up to and including `until_event_id` (or until the log goes quiet).

    Records that are not decodable events are skipped: the log is read, never judged, here;
    a record of several events yields each.
    """
    stop: Callable[[StreamRecord], bool] | None = None
    if until_event_id is not None:
        stop = lambda r: any(e.event_id == until_event_id for e in events_of(r, max_bytes))  # noqa: E731
    for record in read_stream(channel, stream, offset, stop=stop):
        yield from events_of(record, max_bytes)
