"""`connect(coalesce=True)`: what is written between two polls goes out as one chunk, and every
message still arrives whole and in order (small, medium, and larger than one chunk)."""

from __future__ import annotations

import pika
import pytest

from brokers.connection import COALESCE_BYTES, connect
from tests.conftest import BrokerFixture

pytestmark = pytest.mark.integration


def test_publishes_between_two_polls_leave_as_one_chunk_and_arrive_whole_in_order(
    broker: BrokerFixture,
) -> None:
    queue = f"{broker.topology.namespace}.coalesce"
    broker.extra_queues.append(queue)
    conn = connect(broker.url, coalesce=True)
    try:
        channel = conn.channel()
        channel.queue_declare(queue)
        impl = channel._impl
        transport = impl.connection._transport
        for i in range(3):  # below the blocking wrapper: nothing is sent until the next poll
            impl.basic_publish("", queue, f"small {i}".encode(), pika.BasicProperties())
        assert len(transport._tx_buffers) == 1  # 9 frames, one chunk
        conn.process_data_events(time_limit=0)
        assert transport.get_write_buffer_size() == 0
        sizes = [10, 1000, COALESCE_BYTES + 5000] * 20
        channel.confirm_delivery()
        for i, size in enumerate(sizes):
            channel.basic_publish("", queue, bytes([i % 256]) * size)
        got = []
        for _ in range(3 + len(sizes)):
            method, _, body = channel.basic_get(queue, auto_ack=True)
            assert method is not None
            got.append(body)
        assert got[:3] == [b"small 0", b"small 1", b"small 2"]
        assert got[3:] == [bytes([i % 256]) * size for i, size in enumerate(sizes)]
    finally:
        conn.close()
