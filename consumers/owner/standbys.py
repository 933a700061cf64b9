"""Standby owners on the record: heartbeats from standbys, a roster kept by the active owner.

A standby waits for the lease (`consumers.owner.lease`) with a live connection and no state. Every
`HEARTBEAT_S` it publishes an `OwnerHeartbeat` (its id, host, pid, backend) on the control
exchange with routing key ``owner.standby`` and a short expiration. Only the active owner's roster
queue is bound to that key (the control queue binds ``control.#``), so with no active owner the
beats are dropped, never piling up. The active owner declares an exclusive queue,
``<ns>.standbys.<owner id>``, bound to ``owner.standby``, consumes it without acks, and keeps the
last beat of each standby, stamped with its own clock when it arrived; `status` lists those
heard within `STALE_AFTER_S`.

Why this survives failover: the roster is not state to hand over. The owner that takes over
starts with an empty roster and hears every remaining standby within one `HEARTBEAT_S` (the
old owner's queue vanished with its connection). Nothing goes to the event log (a beat is not a
state change) and `OwnerState` is untouched: the shell passes what it heard to the core with the
status command (`Command.standbys`). A beat that does not decode is ignored; the roster keeps at
most `MAX_STANDBYS` owners.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from brokers.connection import Channel, Connection, properties, translated
from brokers.errors import ChannelClosed
from brokers.topology import Topology
from schemas.codec import decode, encode
from schemas.details import StandbyOwner
from schemas.errors import DecodeError
from schemas.messages import OwnerHeartbeat
from schemas.wire import utc_now

log = logging.getLogger(__name__)

HEARTBEAT_S = 2.0
STALE_AFTER_S = 3 * HEARTBEAT_S + 1.0
ROUTING_KEY = "owner.standby"
MAX_STANDBYS = 100


class Beacon:
    """A standby's heartbeat: `beat()` is called from the lease loop and sends at most one
    `OwnerHeartbeat` per `HEARTBEAT_S`."""

    def __init__(
        self,
        connection: Connection,
        topology: Topology,
        owner_id: str,
        backend: str,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connection = connection
        self._topology = topology
        self._owner_id = owner_id
        self._backend = backend
        self._monotonic = monotonic
        self._channel: Channel | None = None
        self._last: float | None = None

    def beat(self) -> None:
        """Send a heartbeat if the last one is `HEARTBEAT_S` old (a failed send is retried at
        the next beat; the lease loop goes on)."""
        now = self._monotonic()
        if self._last is not None and now - self._last < HEARTBEAT_S:
            return
        self._last = now
        heartbeat = OwnerHeartbeat(
            owner_id=self._owner_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            backend=self._backend,
        )
        props = properties(heartbeat, message_id=f"{self._owner_id}-{now:.0f}", user_id=None)
        props.expiration = str(int(STALE_AFTER_S * 1000))
        try:
            with translated("send a standby's heartbeat"):
                if self._channel is None or not self._channel.is_open:
                    self._channel = self._connection.channel()
                self._channel.basic_publish(
                    self._topology.control_exchange, ROUTING_KEY, encode(heartbeat), props
                )
        except ChannelClosed as exc:
            log.debug("standby heartbeat not sent: %r", exc)
            self._channel = None


class Roster:
    """The standbys the active owner heard from, by owner id."""

    def __init__(self, clock: Callable[[], datetime] = utc_now, max_bytes: int = 4096) -> None:
        self._clock = clock
        self._max_bytes = max_bytes
        self._seen: dict[str, StandbyOwner] = {}

    def listen(self, connection: Connection, topology: Topology, owner_id: str) -> None:
        """Bind a queue of this connection's own to the standbys' heartbeats and consume it
        (named under the namespace: a site's owner account may configure nothing else)."""
        channel = connection.channel()
        declared = channel.queue_declare(
            f"{topology.namespace}.standbys.{owner_id}",
            exclusive=True,
            auto_delete=True,
            arguments={"x-message-ttl": int(STALE_AFTER_S * 1000), "x-max-length": 1000},
        )
        queue = declared.method.queue
        channel.queue_bind(queue, topology.control_exchange, ROUTING_KEY)
        channel.basic_consume(queue, self._on_beat, auto_ack=True)

    def _on_beat(self, channel: Any, method: Any, props: Any, body: bytes) -> None:
        try:
            beat = decode(body, props.type, OwnerHeartbeat, self._max_bytes)
        except DecodeError:
            return
        self.heard(beat)

    def heard(self, beat: OwnerHeartbeat) -> None:
        """Record a heartbeat, stamped with this owner's clock."""
        self._seen.pop(beat.owner_id, None)
        self._seen[beat.owner_id] = StandbyOwner(
            owner_id=beat.owner_id,
            host=beat.host,
            pid=beat.pid,
            backend=beat.backend,
            last_heartbeat=self._clock(),
        )
        while len(self._seen) > MAX_STANDBYS:
            self._seen.pop(next(iter(self._seen)))

    def current(self) -> tuple[StandbyOwner, ...]:
        """The standbys heard within `STALE_AFTER_S`, by owner id (older ones are forgotten)."""
        since = self._clock() - timedelta(seconds=STALE_AFTER_S)
        for owner_id in [o for o, s in self._seen.items() if s.last_heartbeat < since]:
            del self._seen[owner_id]
        return tuple(sorted(self._seen.values(), key=lambda s: s.owner_id))
