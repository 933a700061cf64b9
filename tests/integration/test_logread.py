"""The tests' whole-log read (`tests.support.logread`) against a broker that pauses mid-read.

Every chaos test hands the invariant checker the log this read returns: a prefix makes the
checker call the jobs after the cut lost (the fuzz test's "96 of 100 sent and never reached
the log" on a loaded machine). The pause is made without touching the broker: the reader
connects through a loopback proxy (`tests.support.tcpproxy`) that stops forwarding for longer than the
old read's half second of patience, once the read has begun.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import pika
import pytest

from brokers.connection import connect
from schemas.codec import encode
from schemas.envelope import Event
from schemas.events import OwnerActivating, Topic, make_event
from schemas.wire import new_id, utc_now
from tests.conftest import BrokerFixture
from tests.support.logread import records_to_end, whole_log
from tests.support.tcpproxy import TcpProxy

pytestmark = pytest.mark.integration

RECORDS = 1500  # three prefetch windows (500): the reader must ack, and wait, to get them all
PAUSE_S = 2.0  # four times what the old read waited before it called the log complete


@pytest.fixture
def proxy(broker: BrokerFixture) -> Iterator[TcpProxy]:
    """A proxy to the test's broker."""
    parts = urlsplit(broker.url)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5672))
    yield proxy
    proxy.close()


def test_the_whole_log_is_read_when_the_broker_pauses_mid_read(
    broker: BrokerFixture, proxy: TcpProxy
) -> None:
    """Given a log of 1,500 events, when the broker's deliveries pause for 2 s after the first
    one, the read still returns all 1,500, in order."""
    writer = broker.channel()
    sent = []
    for n in range(RECORDS):
        event = make_event(
            Topic.OWNER_ACTIVATING, OwnerActivating(nonce=str(n)), event_id=new_id(), at=utc_now()
        )
        sent.append(event.event_id)
        writer.basic_publish(
            broker.topology.events_exchange,
            event.topic,
            encode(event),
            properties=pika.BasicProperties(type=Event.type_name(), delivery_mode=2),
        )
    reader = connect(proxy.url_of(broker.url), name="test-logread").channel()
    stream = broker.topology.events_stream
    paused = 0
    for _ in records_to_end(reader, stream):
        if not paused:
            proxy.stall()
            threading.Timer(PAUSE_S, proxy.resume).start()
        paused += 1
    assert paused == RECORDS
    assert [e.event_id for e in whole_log(reader, stream)] == sent
