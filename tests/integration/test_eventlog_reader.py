"""Reading the real event-log stream between bounds, and to "now" while events keep coming."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from pika.adapters.blocking_connection import BlockingConnection

from brokers.connection import connect, properties
from consumers.tools.eventlog.errors import NoEventLog
from consumers.tools.eventlog.reader import fetch_end_offset, read_log
from schemas.codec import encode
from schemas.envelope import Event
from tests.conftest import BrokerFixture
from tests.support.eventlogs import at, simple

pytestmark = pytest.mark.integration


@pytest.fixture
def connection(broker: BrokerFixture) -> Iterator[BlockingConnection]:
    """A connection for the reader under test."""
    conn = connect(broker.url, name="test-eventlog-reader")
    yield conn
    if conn.is_open:
        conn.close()


def _publish(broker: BrokerFixture, events: list[Event], ch: object = None) -> None:
    if ch is None:
        ch = broker.channel()
        ch.confirm_delivery()
    for event in events:
        ch.basic_publish(  # type: ignore[attr-defined]
            broker.topology.events_exchange,
            event.topic,
            encode(event),
            properties(event, message_id=event.event_id, user_id=broker.settings.amqp_user),
        )


def test_an_empty_log_reads_as_nothing_and_ends(
    broker: BrokerFixture, connection: BlockingConnection
) -> None:
    stream = broker.topology.events_stream
    assert fetch_end_offset(connection, stream, first_wait_s=0.5) is None
    assert list(read_log(connection, stream)) == []


def test_offset_and_time_bounds_select_their_slice(
    broker: BrokerFixture, connection: BlockingConnection
) -> None:
    events = [simple("qpu.idle", float(i)) for i in range(20)]
    _publish(broker, events)
    stream = broker.topology.events_stream
    assert [r.offset for r in read_log(connection, stream)] == list(range(20))
    assert [r.offset for r in read_log(connection, stream, 5, 7)] == [5, 6, 7]
    by_time = read_log(connection, stream, at(3), at(6) + timedelta(milliseconds=1))
    assert [r.event.event_id for r in by_time] == [e.event_id for e in events[3:7]]
    assert list(read_log(connection, stream, 50)) == []  # past the end: nothing, and it ends


def test_reading_to_now_ends_while_a_writer_keeps_publishing(
    broker: BrokerFixture, connection: BlockingConnection
) -> None:
    _publish(broker, [simple("qpu.idle", 0.0) for _ in range(50)])
    stop = threading.Event()

    writer_channel = broker.channel()
    writer_channel.confirm_delivery()

    def keep_writing() -> None:
        while not stop.is_set():
            _publish(broker, [simple("job.progress", 1.0)], writer_channel)

    writer = threading.Thread(target=keep_writing, daemon=True)
    writer.start()
    try:
        records = list(read_log(connection, broker.topology.events_stream))
    finally:
        stop.set()
        writer.join(timeout=30)
    offsets = [r.offset for r in records]
    assert offsets == list(range(len(offsets))) and len(offsets) >= 50


def test_a_missing_log_is_a_named_error_not_a_traceback(connection: BlockingConnection) -> None:
    """Given no such stream, then reading it raises NoEventLog in the broker's words, whether
    the read starts from the end or from a given offset."""
    expected = r"^cannot read the event log 'nosuchns\.events\.log': NOT_FOUND - no queue"
    with pytest.raises(NoEventLog, match=expected):
        list(read_log(connection, "nosuchns.events.log"))
    with pytest.raises(NoEventLog, match=expected):
        list(read_log(connection, "nosuchns.events.log", 0, 10))
