"""The QPU lease: exactly one active owner, enforced by the broker.

The lease is an exclusive queue. RabbitMQ lets one connection declare it; every other declare
fails with RESOURCE_LOCKED, and the queue vanishes when its connection closes, including when the
owner is killed (the socket closes) or stops answering heartbeats. A standby retries the declare
every `retry_s` while its connection keeps servicing heartbeats, so it takes over within about
`retry_s` of the broker noticing the active owner is gone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from brokers.connection import RESOURCE_LOCKED, Channel, Connection, translated
from brokers.errors import ChannelClosed

log = logging.getLogger(__name__)


def acquire_lease(
    connection: Connection,
    queue: str,
    retry_s: float,
    stopping: Callable[[], bool] = lambda: False,
    waiting: Callable[[], None] = lambda: None,
) -> Channel | None:
    """Block until this connection holds the lease queue; `waiting` runs at every retry (a
    standby's heartbeat, `consumers.owner.standbys`).

    Returns:
        The channel that declared the lease, or None if `stopping` turned true first.
    """
    announced = False
    while not stopping():
        channel = connection.channel()
        try:
            with translated(f"declare the lease {queue}"):
                channel.queue_declare(queue, exclusive=True, auto_delete=True)
            return channel
        except ChannelClosed as exc:
            if exc.code != RESOURCE_LOCKED:
                raise
        if not announced:
            log.info("standby: another owner holds %s; waiting", queue)
            announced = True
        waiting()
        connection.sleep(retry_s)
    return None
