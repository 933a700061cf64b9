"""Shared fixtures.

`isolated_env` (autouse, once per session) removes every ``QSCHED_*`` variable of the user's shell
before any test runs, so settings built here, in owner processes and in CLI subprocesses are the
defaults plus what a test passes explicitly. Broker discovery alone honours the shell's
``QSCHED_AMQP_URL`` and ``QSCHED_RABBITMQ_SERVER``, read from the saved copy; the URL it finds is
then passed to every settings object and child process by hand.

`broker` finds or starts a RabbitMQ by the same chain as `qsched broker up` (once per session),
and gives each test its own namespace, so tests never see each other's queues; teardown deletes
what the test declared, including the reply queues of its clients. `private_broker` is a node of
the test's own that it may kill and restart; without a ``rabbitmq-server`` binary it fails (it
never skips), so CI cannot go green while dropping the tests that need one.

`owners` starts `qsched owner` processes of the test's own; `shared_owner` is one owner per test
module (`module_owner`, on the module's namespace `module_broker`), for tests that only submit
and look at their own jobs: an owner start costs ~3 CPU-seconds (Pulser's import), the largest
part of the default suite's time.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika.exceptions
import pytest
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from brokers.bootstrap import BrokerHandle, PrivateNode, ensure_broker, find_server
from brokers.connection import connect
from brokers.settings import DEFAULT_AMQP_URL, Settings, load_settings
from brokers.topology import Topology, build_topology, declare, delete
from schemas.policy import Policy
from tests.support.environment import child_env, client_env
from tests.support.reliability import pytest_collection_finish, pytest_runtest_logreport

# The reliability report's hooks (collected tests and their outcomes, `tests.support.reliability`).
__all__ = ["child_env", "client_env", "pytest_collection_finish", "pytest_runtest_logreport"]


@dataclass
class BrokerFixture:
    """A broker plus a namespace private to one test."""

    url: str
    settings: Settings
    topology: Topology
    extra_queues: list[str] = field(default_factory=list)
    extra_topologies: list[Topology] = field(default_factory=list)
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

    def forget_queue(self, name: str) -> None:
        """Have teardown delete a queue someone else declared (a client's reply queue)."""
        self.extra_queues.append(name)

    def declare_topology(self, topology: Topology) -> Topology:
        """Declare another namespace's topology that teardown will delete."""
        self.extra_topologies.append(topology)
        declare(self.channel(), topology)
        return topology

    def close(self) -> None:
        """Delete the namespace's objects and close every connection."""
        try:
            ch = connect(self.url, name="test-teardown").channel()
            for topology in (self.topology, *self.extra_topologies):
                delete(ch, topology)
            for name in self.extra_queues:
                ch.queue_delete(name)
            ch.connection.close()
        finally:
            for conn in self._connections:
                # A stream reader's channel may already have been closed by the broker; closing
                # its connection then raises, and nothing is left to clean up on it.
                with contextlib.suppress(pika.exceptions.AMQPError):
                    if conn.is_open:
                        conn.close()


@pytest.fixture(scope="session", autouse=True)
def isolated_env() -> Iterator[dict[str, str]]:
    """Clear ``QSCHED_*`` for the session; yields the user's values (only discovery reads them)."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("QSCHED_")}
    for name in saved:
        del os.environ[name]
    yield saved
    os.environ.update(saved)


@pytest.fixture(scope="session")
def broker_handle(isolated_env: dict[str, str]) -> Iterator[BrokerHandle]:
    """One broker for the whole session (configured, local, private node or container)."""
    server = isolated_env.get("QSCHED_RABBITMQ_SERVER")
    discovery = load_settings(
        amqp_url=isolated_env.get("QSCHED_AMQP_URL", DEFAULT_AMQP_URL),
        rabbitmq_server=server or None,
    )
    handle = ensure_broker(discovery)
    yield handle
    handle.close()


def make_settings(url: str, namespace: str, **overrides: Any) -> Settings:
    """Settings for a test: given URL and namespace, everything else from defaults.

    The same defaults an owner started by `tests.support.owners.start_owner` sees, since neither this
    process (see `isolated_env`) nor the owner's environment holds any other ``QSCHED_*``.
    """
    return load_settings(amqp_url=url, namespace=namespace, **overrides)


def new_namespace(broker_handle: BrokerHandle) -> BrokerFixture:
    """A fresh namespace on the session broker, its topology declared (`close` deletes it)."""
    namespace = f"t{uuid.uuid4().hex[:10]}"
    settings = make_settings(broker_handle.url, namespace, broker={"reply_expires_ms": 120_000})
    topology = build_topology(settings, Policy())
    fixture = BrokerFixture(broker_handle.url, settings, topology)
    declare(fixture.channel(), topology)
    return fixture


@pytest.fixture
def broker(broker_handle: BrokerHandle) -> Iterator[BrokerFixture]:
    """The session broker with a fresh namespace whose topology is declared."""
    fixture = new_namespace(broker_handle)
    yield fixture
    fixture.close()


@pytest.fixture(scope="session")
def rabbitmq_server(isolated_env: dict[str, str]) -> Path:
    """The rabbitmq-server binary for private nodes: the shell's ``QSCHED_RABBITMQ_SERVER``, else
    the usual places; a test that needs one fails without it (never skips)."""
    configured = isolated_env.get("QSCHED_RABBITMQ_SERVER")
    server = find_server(Path(configured) if configured else None)
    if server is None:
        pytest.fail(
            "this test needs the rabbitmq-server binary to run a private RabbitMQ node (it kills"
            " and restarts it, or sets consumer_timeout); install RabbitMQ (apt-get install"
            " rabbitmq-server) or point QSCHED_RABBITMQ_SERVER at the binary",
            pytrace=False,
        )
    return server


@pytest.fixture
def private_broker_factory(rabbitmq_server: Path) -> Iterator[Callable[..., PrivateNode]]:
    """Start private nodes with extra config; all are stopped and removed at teardown."""
    server = rabbitmq_server
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
        from tests.support.owners import start_owner, wait_active

        owner = start_owner(
            self.broker.url, self.broker.topology.namespace, self.log_dir, *args, env=env
        )
        self.owners.append(owner)
        if wait:
            wait_active(self.client())
        return owner

    def client(self, validate_locally: bool = True) -> Any:
        """A new QPUClient on this namespace (closed, reply queue deleted, at teardown)."""
        from producers.client import QPUClient

        client = QPUClient(settings=self.broker.settings, validate_locally=validate_locally)
        self.clients.append(client)
        self.broker.forget_queue(client.reply_queue_name)
        return client

    def close(self) -> None:
        """Stop every owner (SIGTERM, SIGKILL after a grace period) and close every client."""
        for owner in self.owners:
            owner.stop()
        self.close_clients()

    def close_clients(self) -> None:
        """Close every client this harness made."""
        for client in self.clients:
            with contextlib.suppress(Exception):
                client.close()
        self.clients.clear()


@pytest.fixture
def owners(broker: BrokerFixture, tmp_path: Any) -> Iterator[OwnerHarness]:
    """Start real `qsched owner` processes on the test's namespace; all stopped at teardown."""
    harness = OwnerHarness(broker, tmp_path)
    yield harness
    harness.close()


# The module's shared owner (`shared_owner`) is started with these unless the test module sets
# `SHARED_OWNER_ARGS` at its top level (and `SHARED_OWNER_ENV`, extra environment variables, or
# `SHARED_OWNER_POLICY`, the text of its policy file).
SHARED_OWNER_ARGS = ("--backend", "synthetic")


@dataclass
class SharedOwnerHarness(OwnerHarness):
    """`OwnerHarness` over the module's one owner: a test gets its own clients, never owners."""

    def start(self, *args: str, env: dict[str, str] | None = None, wait: bool = True) -> Any:
        """Refused: a test that needs an owner of its own (to stop, kill, pause or reconfigure
        it, or to count what only it did) takes the `owners` fixture instead."""
        raise AssertionError("a test on the module's shared owner starts no owner: use `owners`")

    def close(self) -> None:
        """Close this test's clients; fail if the shared owner died during the test."""
        self.close_clients()
        [owner] = self.owners
        assert owner.process.poll() is None, f"the shared owner died:\n{owner.log()[-3000:]}"


@pytest.fixture(scope="module")
def module_broker(broker_handle: BrokerHandle) -> Iterator[BrokerFixture]:
    """A namespace for one test module (its shared owner's), deleted after the module."""
    fixture = new_namespace(broker_handle)
    yield fixture
    fixture.close()


@pytest.fixture(scope="module")
def module_owner(
    request: pytest.FixtureRequest,
    module_broker: BrokerFixture,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Any]:
    """One `qsched owner` for a test module, started with the module's `SHARED_OWNER_ARGS`,
    `SHARED_OWNER_ENV` and `SHARED_OWNER_POLICY`; stopped after the module's last test."""
    args = tuple(getattr(request.module, "SHARED_OWNER_ARGS", SHARED_OWNER_ARGS))
    env = getattr(request.module, "SHARED_OWNER_ENV", None)
    log_dir = tmp_path_factory.mktemp("shared-owner")
    policy = getattr(request.module, "SHARED_OWNER_POLICY", None)
    if policy is not None:
        (log_dir / "policy.toml").write_text(policy)
        args += ("--policy", str(log_dir / "policy.toml"))
    starter = OwnerHarness(module_broker, log_dir)
    try:
        owner = starter.start(*args, env=env)  # returns once it answers `status`
        starter.close_clients()
        yield owner
    finally:
        starter.close()


@pytest.fixture
def shared_owner(
    module_broker: BrokerFixture, module_owner: Any, tmp_path: Any
) -> Iterator[OwnerHarness]:
    """The module's one owner (started once, see `module_owner`) and clients for this test.

    For tests that only submit and look at their own jobs: the owner has already served the
    module's earlier tests (in any order), so a test on it asserts only on its own jobs, ids and
    events, and never pauses, drains, kills, reconfigures or stops it (use `owners` for that).
    """
    harness = SharedOwnerHarness(module_broker, tmp_path, owners=[module_owner])
    yield harness
    harness.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """An empty selection is a failure with a reason, never a silent green (pytest exit 5)."""
    if exitstatus != pytest.ExitCode.NO_TESTS_COLLECTED:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    markexpr = session.config.getoption("markexpr") or ""
    line = (
        f"qsched: no test selected (-m {markexpr!r}); an empty tier fails on purpose (exit 5) so "
        "CI cannot pass without running it. Mark a real test or fix the selection."
    )
    if reporter is not None:
        reporter.write_line(line, red=True)


SLOW_TIMEOUT_S = 1800


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`slow` tests get a per-test timeout of their tier (the default 120 s is for the others)."""
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT_S))
