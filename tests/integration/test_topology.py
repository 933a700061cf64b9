"""Broker behaviour the topology relies on, checked on a real RabbitMQ."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pika
import pika.exceptions
import pytest

from brokers.stream import read_stream
from brokers.topology import REASON_HEADER, dead_letter_properties, declare
from tests.conftest import BrokerFixture

pytestmark = pytest.mark.integration


def _publish(
    ch: pika.adapters.blocking_connection.BlockingChannel,
    exchange: str,
    key: str,
    body: bytes,
    priority: int = 0,
) -> None:
    ch.basic_publish(
        exchange,
        key,
        body,
        pika.BasicProperties(delivery_mode=2, priority=priority),
        mandatory=True,
    )


def test_declaring_twice_is_a_no_op_and_keeps_messages(broker: BrokerFixture) -> None:
    ch = broker.channel()
    ch.confirm_delivery()
    _publish(ch, broker.topology.jobs_exchange, "production", b"kept")
    declare(ch, broker.topology)
    declare(ch, broker.topology)
    ok = ch.queue_declare(broker.topology.job_queue("production"), passive=True)
    assert ok.method.message_count == 1


def test_priority_9_published_after_1000_of_priority_0_is_consumed_first(
    broker: BrokerFixture,
) -> None:
    ch = broker.channel()
    ch.confirm_delivery()
    for i in range(1000):
        _publish(ch, broker.topology.jobs_exchange, "development", f"low-{i}".encode())
    _publish(ch, broker.topology.jobs_exchange, "development", b"urgent", priority=9)
    ch.basic_qos(prefetch_count=1)
    method, _, body = next(
        ch.consume(broker.topology.job_queue("development"), inactivity_timeout=5)
    )
    assert body == b"urgent"
    ch.basic_ack(method.delivery_tag)
    _, _, second = next(ch.consume(broker.topology.job_queue("development"), inactivity_timeout=5))
    assert second == b"low-0"
    ch.cancel()


def test_a_message_rejected_without_requeue_lands_in_dead_with_its_reason(
    broker: BrokerFixture,
) -> None:
    ch = broker.channel()
    ch.confirm_delivery()
    _publish(ch, broker.topology.jobs_exchange, "production", b"bad")
    method, _, _ = next(ch.consume(broker.topology.job_queue("production"), inactivity_timeout=5))
    ch.basic_reject(method.delivery_tag, requeue=False)
    ch.cancel()
    method, props, body = next(ch.consume(broker.topology.dead_queue, inactivity_timeout=5))
    assert body == b"bad"
    death = props.headers["x-death"][0]
    assert death["reason"] == "rejected"
    assert death["queue"] == broker.topology.job_queue("production")
    ch.basic_ack(method.delivery_tag)


def test_a_message_dead_lettered_by_qsched_carries_its_reason_in_headers(
    broker: BrokerFixture,
) -> None:
    ch = broker.channel()
    ch.confirm_delivery()
    original = pika.BasicProperties(type="qsched.JobRequest/1", message_id="m1", delivery_mode=2)
    props = dead_letter_properties(original, "shots: must be > 0", "INVALID_SCHEMA", "q.jobs.x")
    ch.basic_publish(broker.topology.dead_letter_exchange, "", b"raw", props, mandatory=True)
    _, got, body = next(ch.consume(broker.topology.dead_queue, inactivity_timeout=5))
    assert body == b"raw"
    assert got.headers[REASON_HEADER] == "shots: must be > 0"
    assert got.message_id == "m1"
    ch.cancel()


def test_publishing_to_an_unknown_class_comes_back_unroutable(broker: BrokerFixture) -> None:
    ch = broker.channel()
    ch.confirm_delivery()
    with pytest.raises(pika.exceptions.UnroutableError):
        _publish(ch, broker.topology.jobs_exchange, "no-such-class", b"x")


def test_the_events_stream_reads_from_first_offset_and_from_a_timestamp(
    broker: BrokerFixture,
) -> None:
    ch = broker.channel()
    ch.confirm_delivery()
    for i in range(3):
        ch.basic_publish(
            broker.topology.events_exchange, "job.accepted", f"a{i}".encode(), mandatory=True
        )
    # Stream timestamps have one-second precision: let the clock move past the first batch.
    time.sleep(1.5)
    since = datetime.now(UTC)
    time.sleep(1.1)
    for i in range(3):
        ch.basic_publish(
            broker.topology.events_exchange, "job.done", f"b{i}".encode(), mandatory=True
        )
    reader = broker.channel()
    everything = [r.body for r in read_stream(reader, broker.topology.events_stream, "first")]
    assert everything == [b"a0", b"a1", b"a2", b"b0", b"b1", b"b2"]
    later = [r.body for r in read_stream(reader, broker.topology.events_stream, since)]
    assert later == [b"b0", b"b1", b"b2"]
    offsets = [r.offset for r in read_stream(reader, broker.topology.events_stream, 4)]
    assert offsets == [4, 5]


def test_a_stream_reader_that_stops_early_leaves_its_connection_usable(
    broker: BrokerFixture,
) -> None:
    """Given more records buffered than the reader wants, stopping early acks them (a stream
    closes the connection on basic.reject) and the channel and connection stay usable."""
    ch = broker.channel()
    ch.confirm_delivery()
    for i in range(50):
        ch.basic_publish(broker.topology.events_exchange, "job.queued", f"e{i}".encode())
    reader = broker.channel()
    first = [
        r.body
        for r in read_stream(
            reader, broker.topology.events_stream, "first", stop=lambda r: r.body == b"e2"
        )
    ]
    assert first == [b"e0", b"e1", b"e2"]
    reader.connection.process_data_events(time_limit=0.5)  # a 540 close would arrive here
    assert reader.is_open and reader.connection.is_open
    again = [r.body for r in read_stream(reader, broker.topology.events_stream, "first")]
    assert len(again) == 50
