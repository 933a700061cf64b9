"""A private node survives kill -9 with its persistent messages."""

from __future__ import annotations

import pika
import pytest

from brokers.bootstrap import PrivateNode
from brokers.connection import connect
from brokers.settings import load_settings
from brokers.topology import build_topology, declare
from schemas.policy import Policy

pytestmark = pytest.mark.chaos


def test_persistent_messages_survive_kill_9_and_restart(private_broker: PrivateNode) -> None:
    topology = build_topology(load_settings(namespace="chaos"), Policy())
    conn = connect(private_broker.url)
    ch = conn.channel()
    declare(ch, topology)
    ch.confirm_delivery()
    for i in range(50):
        ch.basic_publish(
            topology.jobs_exchange,
            "production",
            f"job-{i}".encode(),
            pika.BasicProperties(delivery_mode=2, priority=i % 10),
            mandatory=True,
        )
    private_broker.kill()
    private_broker.restart()
    ch = connect(private_broker.url).channel()
    ok = ch.queue_declare(topology.job_queue("production"), passive=True)
    assert ok.method.message_count == 50
    bodies = set()
    for method, _, body in ch.consume(topology.job_queue("production"), inactivity_timeout=2):
        if method is None:
            break
        bodies.add(body)
    assert bodies == {f"job-{i}".encode() for i in range(50)}
