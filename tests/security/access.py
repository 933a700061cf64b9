"""Attempts a broker user makes, reduced to what the broker answered: "ok" or the AMQP code.

Shared by the permission tests (internal users) and the MUNGE tests (http auth backend), so both
check the same matrix of attempts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from brokers.topology import Topology

URL = str | Callable[[], str]


def outcome(url: URL, attempt: Callable[[BlockingChannel], Any]) -> str:
    """Run `attempt` on a fresh connection and confirmed channel: "ok", or the broker's reply
    code as text. `url` may be a function giving a fresh URL (a new MUNGE credential) each time."""
    conn = pika.BlockingConnection(pika.URLParameters(url() if callable(url) else url))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        attempt(ch)
        return "ok"
    except pika.exceptions.ChannelClosedByBroker as exc:
        return str(exc.reply_code)
    finally:
        if conn.is_open:
            conn.close()


def publish(exchange: str, key: str, user_id: str | None) -> Callable[[BlockingChannel], Any]:
    """A confirmed publish with `user_id`."""

    def run(ch: BlockingChannel) -> None:
        ch.basic_publish(exchange, key, b"x", pika.BasicProperties(user_id=user_id))

    return run


def declare_queue(
    name: str, arguments: dict[str, Any] | None = None
) -> Callable[[BlockingChannel], Any]:
    """Declare a non-durable queue named `name`."""

    def run(ch: BlockingChannel) -> None:
        ch.queue_declare(name, durable=False, auto_delete=True, arguments=arguments)

    return run


def consume(queue: str, stream: bool = False) -> Callable[[BlockingChannel], Any]:
    """Start consuming `queue` (a stream from its first offset when `stream`)."""

    def run(ch: BlockingChannel) -> None:
        ch.basic_qos(prefetch_count=10)
        args = {"x-stream-offset": "first"} if stream else None
        ch.basic_consume(queue, lambda *a: None, arguments=args)

    return run


def matrix(topology: Topology, url: URL, user: str, other: str) -> dict[str, str]:
    """The attempts of `user` that least privilege decides, with what the broker answered."""
    ns = topology.namespace
    own = topology.reply_queue(user, "c1")
    theirs = topology.reply_queue(other, "c1")
    return {
        "publish a job as self": outcome(url, publish(topology.jobs_exchange, "production", user)),
        "publish a job as another user_id": outcome(
            url, publish(topology.jobs_exchange, "production", other)
        ),
        "declare own reply queue": outcome(url, declare_queue(own)),
        "declare another user's reply queue": outcome(url, declare_queue(theirs)),
        "consume another user's reply queue": outcome(url, consume(theirs)),
        "consume the event log": outcome(url, consume(topology.events_stream, stream=True)),
        "consume a class queue": outcome(url, consume(topology.job_queue("production"))),
        "send control.pause": outcome(
            url, publish(topology.control_exchange, "control.pause", user)
        ),
        "send control.cancel": outcome(
            url, publish(topology.control_exchange, "control.cancel", user)
        ),
        "publish to the event exchange": outcome(
            url, publish(topology.events_exchange, "job.done", user)
        ),
        "declare a queue in the namespace": outcome(url, declare_queue(f"{ns}.mine")),
    }
