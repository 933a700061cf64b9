"""A namespace as a whole: is an owner holding its QPU, and removing everything it declared.

Whether an owner is active is asked of the broker, not of an owner: the QPU lease is an
exclusive queue (`consumers.owner.lease`), so a passive declare of it from any other connection fails
with RESOURCE_LOCKED while an owner holds it and with NOT_FOUND when none does. Nothing is
published, so nothing expires into the dead-letter queue when no owner runs.

`drop_namespace` deletes the namespace's exchanges and long-lived queues (class queues of the
given policy, control, dead letters, the event log, snapshots, device). Reply queues of clients
and the lease and standby queues of owners are per connection: they expire or vanish on their
own (`broker.reply_expires_ms`; exclusive queues with their connection).
"""

from __future__ import annotations

import re

import pika.exceptions

from brokers.connection import channel
from brokers.errors import BrokerError
from brokers.topology import Topology

NOT_FOUND = 404
RESOURCE_LOCKED = 405
NAMESPACE = re.compile(r"[a-zA-Z0-9_-]+")  # as `Settings.namespace` allows


class DropRefused(BrokerError):
    """The broker refused to delete part of the namespace (not an operator's account)."""

    hint = "dropping a namespace needs an operator's broker account (configure on <ns>.*)"


class OwnerStillActive(BrokerError):
    """An owner holds the namespace's QPU: dropping it would pull its queues from under it."""


def owner_holds_lease(url: str, topology: Topology) -> bool:
    """Whether an owner holds the namespace's QPU lease now.

    Raises:
        BrokerUnavailable: no connection.
        pika.exceptions.ChannelClosedByBroker: another refusal (e.g. 403: no access to the name).
    """
    with channel(url, name="qsched-lease-probe") as ch:
        try:
            ch.queue_declare(topology.lease_queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == RESOURCE_LOCKED:
                return True
            if exc.reply_code == NOT_FOUND:
                return False
            raise
    return False  # only the holder's own connection can declare it; ours is not


def drop_namespace(url: str, topology: Topology, force: bool = False) -> list[str]:
    """Delete every exchange and long-lived queue of `topology`; the names deleted.

    Args:
        url: the broker URL (an operator's: it needs configure permission on ``<ns>.*``).
        topology: the namespace and the job classes whose queues go.
        force: drop it even while an owner holds its QPU.

    Raises:
        OwnerStillActive: an owner is active and not `force`.
        DropRefused: the broker refused a delete (403: not an operator's account).
    """
    try:
        active = not force and owner_holds_lease(url, topology)
    except pika.exceptions.ChannelClosedByBroker as exc:
        raise DropRefused(f"the broker refused: {exc.reply_text}") from exc
    if active:
        raise OwnerStillActive(
            f"an owner holds the QPU of namespace {topology.namespace!r}; stop it first "
            "(or give --force)"
        )
    deleted = []
    with channel(url, name="qsched-drop-namespace") as ch:
        try:
            for queue in topology.queues():
                ch.queue_delete(queue.name)  # a queue that is not there is no error
                deleted.append(queue.name)
            for exchange in topology.exchanges():
                ch.exchange_delete(exchange.name)
                deleted.append(exchange.name)
        except pika.exceptions.ChannelClosedByBroker as exc:
            raise DropRefused(f"the broker refused: {exc.reply_text}") from exc
    return deleted
