"""Shared fixtures.

`broker` finds or starts a RabbitMQ by the same chain as `qsched broker up` (once per session),
and gives each test its own namespace, so tests never see each other's queues; teardown deletes
what the test declared. `private_broker` is a node of the test's own that it may kill and restart.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from brokers.bootstrap import BrokerHandle, PrivateNode, ensure_broker, find_server
from brokers.connection import connect
from brokers.settings import Settings, load_settings
from brokers.topology import Topology, build_topology, declare, delete
from schemas.policy import Policy


@dataclass
class BrokerFixture:
    """A broker plus a namespace private to one test."""

    url: str
    settings: Settings
    topology: Topology
    extra_queues: list[str] = field(default_factory=list)
    _connections: list[BlockingConnection] = field(default_factory=list)

    def channel(self) -> BlockingChannel:
        """A new channel on a new connection, closed at teardown."""
        conn = connect(self.url, name=f"test-{self.topology.namespace}")
        self._connections.append(conn)
        return conn.channel()

    def declare_queue(self, name: str, **kwargs: Any) -> str:
        """Declare an extra queue that teardown will delete."""
        self.channel().queue_declare(name, **kwargs)
        self.extra_queues.append(name)
        return name

    def close(self) -> None:
        """Delete the namespace's objects and close every connection."""
        try:
            ch = connect(self.url, name="test-teardown").channel()
            delete(ch, self.topology)
            for name in self.extra_queues:
                ch.queue_delete(name)
            ch.connection.close()
        finally:
            for conn in self._connections:
                if conn.is_open:
                    conn.close()


@pytest.fixture(scope="session")
def broker_handle() -> Iterator[BrokerHandle]:
    """One broker for the whole session (configured, local, private node or container)."""
    handle = ensure_broker(load_settings())
    yield handle
    handle.close()


def make_settings(url: str, namespace: str, **overrides: Any) -> Settings:
    """Settings for a test: given URL and namespace, everything else from defaults."""
    return load_settings(amqp_url=url, namespace=namespace, **overrides)


@pytest.fixture
def broker(broker_handle: BrokerHandle) -> Iterator[BrokerFixture]:
    """The session broker with a fresh namespace whose topology is declared."""
    namespace = f"t{uuid.uuid4().hex[:10]}"
    settings = make_settings(broker_handle.url, namespace, broker={"reply_expires_ms": 120_000})
    topology = build_topology(settings, Policy())
    fixture = BrokerFixture(broker_handle.url, settings, topology)
    declare(fixture.channel(), topology)
    yield fixture
    fixture.close()


@pytest.fixture
def private_broker_factory() -> Iterator[Callable[..., PrivateNode]]:
    """Start private nodes with extra config; all are stopped and removed at teardown."""
    server = find_server()
    if server is None:
        pytest.skip("needs the rabbitmq-server binary to run a private node")
    nodes: list[PrivateNode] = []

    def start(
        config_lines: tuple[str, ...] = (),
        advanced: dict[str, int] | None = None,
        plugins: tuple[str, ...] = (),
    ) -> PrivateNode:
        node = PrivateNode(
            server, config_lines=config_lines, advanced=advanced or {}, plugins=plugins
        )
        nodes.append(node)
        return node.start()

    yield start
    for node in nodes:
        node.stop()


@pytest.fixture
def private_broker(private_broker_factory: Callable[..., PrivateNode]) -> PrivateNode:
    """A private RabbitMQ node that this test may kill -9 and restart."""
    return private_broker_factory()


@dataclass
class OwnerHarness:
    """Owners on the `broker` fixture's namespace, a client for it, and cleanup."""

    broker: BrokerFixture
    log_dir: Any
    owners: list[Any] = field(default_factory=list)
    clients: list[Any] = field(default_factory=list)

    def start(self, *args: str, env: dict[str, str] | None = None, wait: bool = True) -> Any:
        """Start an owner; with `wait`, return once an owner answers `status`."""
        from tests.owners import start_owner, wait_active

        owner = start_owner(
            self.broker.url, self.broker.topology.namespace, self.log_dir, *args, env=env
        )
        self.owners.append(owner)
        if wait:
            wait_active(self.client())
        return owner

    def client(self, validate_locally: bool = True) -> Any:
        """A new QPUClient on this namespace (closed at teardown)."""
        from producers.client import QPUClient

        client = QPUClient(settings=self.broker.settings, validate_locally=validate_locally)
        self.clients.append(client)
        return client

    def close(self) -> None:
        """Stop every owner and client."""
        for owner in self.owners:
            owner.stop()
        for client in self.clients:
            client.close()


@pytest.fixture
def owners(broker: BrokerFixture, tmp_path: Any) -> Iterator[OwnerHarness]:
    """Start real `qsched owner` processes on the test's namespace; all stopped at teardown."""
    harness = OwnerHarness(broker, tmp_path)
    yield harness
    harness.close()
