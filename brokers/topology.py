"""Every exchange and queue of qsched, as data, and the functions that declare them.

This module is the one place where names and arguments live (DESIGN section 3). Declaring is
idempotent: RabbitMQ accepts a redeclaration with identical arguments, and refuses one with
different arguments, which `declare` reports as `TopologyMismatch` naming the object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from brokers.errors import TopologyMismatch
from brokers.settings import Settings
from schemas.policy import Policy

MAX_PRIORITY = 10
DEVICE_STREAM_BYTES = 8 * 1024 * 1024  # the device specs stream keeps the last few publishes
DEVICE_SEGMENT_BYTES = 1024 * 1024  # retention drops whole segments: keep them small
REASON_HEADER = "x-qsched-reason"
CODE_HEADER = "x-qsched-error-code"
ORIGIN_HEADER = "x-qsched-original-queue"
ORIGINAL_USER_HEADER = "x-qsched-original-user"
DEATH_HEADER = "x-death"  # the broker's own record of a dead letter's deaths


@dataclass(frozen=True)
class ExchangeSpec:
    """One exchange."""

    name: str
    kind: str
    durable: bool = True


@dataclass(frozen=True)
class QueueSpec:
    """One queue with its arguments and bindings ``(exchange, routing_key)``."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    bindings: tuple[tuple[str, str], ...] = ()
    durable: bool = True


@dataclass(frozen=True)
class Topology:
    """Names and arguments for one namespace and one set of job classes."""

    namespace: str
    class_names: tuple[str, ...]
    job_queue_max_length: int | None = None
    events_max_age: str = "7D"
    events_max_bytes: int = 2 * 1024**3
    reply_expires_ms: int = 15 * 60 * 1000
    queue_type: str = "classic"  # "quorum": replicated queues for a cluster (see `queues`)
    replicas: int = 3

    @property
    def jobs_exchange(self) -> str:
        """Direct exchange; routing key = job class."""
        return f"{self.namespace}.jobs"

    @property
    def control_exchange(self) -> str:
        """Topic exchange for operators' commands (``control.<command>``)."""
        return f"{self.namespace}.control"

    @property
    def control_queue(self) -> str:
        """Durable queue of pending commands; survives an owner restart."""
        return f"{self.namespace}.control"

    @property
    def events_exchange(self) -> str:
        """Topic exchange of every state change."""
        return f"{self.namespace}.events"

    @property
    def events_stream(self) -> str:
        """Stream queue holding the replayable history."""
        return f"{self.namespace}.events.log"

    @property
    def dead_letter_exchange(self) -> str:
        """Fanout exchange receiving every refused message."""
        return f"{self.namespace}.dlx"

    @property
    def dead_queue(self) -> str:
        """Where refused messages wait for an operator."""
        return f"{self.namespace}.dead"

    @property
    def lease_queue(self) -> str:
        """Exclusive queue whose holder is the one active owner."""
        return f"{self.namespace}.owner.lease"

    @property
    def snapshot_queue(self) -> str:
        """Holds one message: where in the log the owner's last snapshot is."""
        return f"{self.namespace}.snapshot"

    @property
    def device_queue(self) -> str:
        """Stream of the device specs the owner validates against; its last record is the one
        in force. A stream, so that reading never removes (a submitter may read it, and can
        neither take the specs away with ``basic.get`` nor purge them)."""
        return f"{self.namespace}.device.specs"

    def job_queue(self, job_class: str) -> str:
        """The queue of one job class."""
        return f"{self.namespace}.jobs.{job_class}"

    def reply_queue(self, user: str, client_id: str) -> str:
        """A submitter's reply queue."""
        return f"{self.namespace}.reply.{user}.{client_id}"

    @property
    def reply_queue_template(self) -> str:
        """What every reply queue's name is an instance of (span names carry this)."""
        return f"{self.namespace}.reply.{{user}}.{{client_id}}"

    def is_reply_queue_of(self, name: str | None, user: str | None) -> bool:
        """Whether `name` is a reply queue of `user` (``<ns>.reply.<user>.<client-id>``).

        The client id has no dot, so a user named ``a`` cannot claim user ``a.b``'s queues.
        """
        if not name or not user:
            return False
        prefix = f"{self.namespace}.reply.{user}."
        client_id = name[len(prefix) :]
        return name.startswith(prefix) and bool(client_id) and "." not in client_id

    def reply_queue_arguments(self) -> dict[str, Any]:
        """Reply queues expire when unused, so a short disconnect loses nothing."""
        return {"x-expires": self.reply_expires_ms}

    def exchanges(self) -> tuple[ExchangeSpec, ...]:
        """All exchanges, dead-letter exchange first (queues refer to it)."""
        return (
            ExchangeSpec(self.dead_letter_exchange, "fanout"),
            ExchangeSpec(self.jobs_exchange, "direct"),
            ExchangeSpec(self.control_exchange, "topic"),
            ExchangeSpec(self.events_exchange, "topic"),
        )

    def queues(self) -> tuple[QueueSpec, ...]:
        """All long-lived queues (reply and lease queues are per client / per owner).

        With ``queue_type == "quorum"`` every one of them survives the loss of a node: the
        queues are quorum queues on `replicas` nodes (no ``x-max-priority``: quorum queues refuse
        it, and the owner, which holds the whole backlog, orders jobs by their priority itself),
        and the event stream is replicated on as many nodes.
        """
        dlx = {"x-dead-letter-exchange": self.dead_letter_exchange}
        quorum = self.queue_type == "quorum"
        kind = (
            {"x-queue-type": "quorum", "x-quorum-initial-group-size": self.replicas}
            if quorum
            else {}
        )
        job_args: dict[str, Any] = {**kind, **dlx}
        if not quorum:
            job_args["x-max-priority"] = MAX_PRIORITY
        if self.job_queue_max_length is not None:
            job_args |= {"x-max-length": self.job_queue_max_length, "x-overflow": "reject-publish"}
        jobs = tuple(
            QueueSpec(self.job_queue(c), dict(job_args), ((self.jobs_exchange, c),))
            for c in self.class_names
        )
        stream: dict[str, Any] = {
            "x-queue-type": "stream",
            "x-max-age": self.events_max_age,
            "x-max-length-bytes": self.events_max_bytes,
        }
        if quorum:
            stream["x-initial-cluster-size"] = self.replicas
        latest = {**kind, "x-max-length": 1, "x-overflow": "drop-head"}
        specs: dict[str, Any] = {
            "x-queue-type": "stream",
            "x-max-length-bytes": DEVICE_STREAM_BYTES,
            "x-stream-max-segment-size-bytes": DEVICE_SEGMENT_BYTES,
        }
        if quorum:
            specs["x-initial-cluster-size"] = self.replicas
        return (
            QueueSpec(self.dead_queue, dict(kind), ((self.dead_letter_exchange, ""),)),
            *jobs,
            QueueSpec(self.control_queue, {**kind, **dlx}, ((self.control_exchange, "control.#"),)),
            QueueSpec(self.events_stream, stream, ((self.events_exchange, "#"),)),
            QueueSpec(self.snapshot_queue, dict(latest)),
            QueueSpec(self.device_queue, specs),
        )


def build_topology(settings: Settings, policy: Policy) -> Topology:
    """The topology for a namespace and the job classes of a policy."""
    return Topology(
        namespace=settings.namespace,
        class_names=policy.class_names,
        job_queue_max_length=settings.broker.job_queue_max_length,
        events_max_age=settings.broker.events_max_age,
        events_max_bytes=settings.broker.events_max_bytes,
        reply_expires_ms=settings.broker.reply_expires_ms,
        queue_type=settings.broker.queue_type,
        replicas=settings.broker.replicas,
    )


def declare(channel: BlockingChannel, topology: Topology) -> None:
    """Declare every exchange, queue and binding; a no-op when they already exist.

    Raises:
        TopologyMismatch: an object exists with different arguments (the channel is closed).
    """
    current = ""
    try:
        for ex in topology.exchanges():
            current = f"exchange {ex.name}"
            channel.exchange_declare(ex.name, ex.kind, durable=ex.durable)
        for q in topology.queues():
            current = f"queue {q.name}"
            channel.queue_declare(q.name, durable=q.durable, arguments=q.arguments)
            for exchange, key in q.bindings:
                channel.queue_bind(q.name, exchange, routing_key=key)
    except pika.exceptions.ChannelClosedByBroker as exc:
        raise TopologyMismatch(f"{current}: {exc.reply_text}") from exc


def delete(channel: BlockingChannel, topology: Topology) -> None:
    """Delete every queue and exchange of the topology (tests and `broker down` use it)."""
    for q in topology.queues():
        channel.queue_delete(q.name)
    for ex in topology.exchanges():
        channel.exchange_delete(ex.name)


def describe(topology: Topology) -> list[dict[str, Any]]:
    """Rows for printing: kind, name, type or arguments, bindings."""
    rows: list[dict[str, Any]] = [
        {"kind": "exchange", "name": ex.name, "type": ex.kind, "arguments": {}, "bindings": []}
        for ex in topology.exchanges()
    ]
    rows += [
        {
            "kind": "queue",
            "name": q.name,
            "type": q.arguments.get("x-queue-type", "classic"),
            "arguments": q.arguments,
            "bindings": [f"{ex} ({key or '-'})" for ex, key in q.bindings],
        }
        for q in topology.queues()
    ]
    return rows


def dead_letter_properties(
    properties: pika.BasicProperties, reason: str, code: str, origin: str
) -> pika.BasicProperties:
    """Copy of a message's properties with the reason it was refused in the headers."""
    headers = dict(properties.headers or {})
    headers |= {REASON_HEADER: reason[:1000], CODE_HEADER: code, ORIGIN_HEADER: origin}
    return pika.BasicProperties(
        content_type=properties.content_type,
        type=properties.type,
        message_id=properties.message_id,
        correlation_id=properties.correlation_id,
        reply_to=properties.reply_to,
        timestamp=properties.timestamp,
        user_id=None,  # the owner re-publishes it; the original sender stays in the headers
        priority=properties.priority,
        delivery_mode=2,
        headers=headers | {ORIGINAL_USER_HEADER: properties.user_id or ""},
    )


def _text(value: Any) -> str | None:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def dead_letter_origin(properties: Any) -> str | None:
    """The queue a dead letter came from: the owner's header, else the broker's ``x-death``."""
    headers = properties.headers or {}
    origin = _text(headers.get(ORIGIN_HEADER))
    if origin:
        return str(origin)
    deaths = headers.get(DEATH_HEADER)
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return _text(deaths[0].get("queue"))
    return None


def dead_letter_sender(properties: Any) -> str | None:
    """Who sent a dead letter: recorded by the owner, or the ``user_id`` the broker kept."""
    return _text((properties.headers or {}).get(ORIGINAL_USER_HEADER) or properties.user_id)


def dead_letter_reason(properties: Any) -> tuple[str | None, str | None]:
    """A dead letter's error code and reason (the owner's headers; else the broker's
    ``x-death`` reason, e.g. ``expired`` or ``rejected``)."""
    headers = properties.headers or {}
    code = _text(headers.get(CODE_HEADER))
    reason = _text(headers.get(REASON_HEADER))
    if code is None and reason is None:
        deaths = headers.get(DEATH_HEADER)
        if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
            reason = _text(deaths[0].get("reason"))
    return code, reason
