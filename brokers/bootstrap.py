"""Finding or starting a RabbitMQ for development and tests.

`ensure_broker` walks a chain and stops at the first link that works:

1. the configured ``QSCHED_AMQP_URL``: when one is set, it is the broker asked for, and if it
   does not answer that is the error (it says why), never a reason to use another broker;
2. with none set, ``127.0.0.1:5672`` with guest/guest (the site's or the machine's broker);
3. a private node started from the ``rabbitmq-server`` binary: its own node name, ports, data
   dir and Erlang cookie under a temp folder, so it never touches another node;
4. where a Docker engine runs, a container through testcontainers;
5. otherwise `BrokerUnavailable` with the exact steps to install RabbitMQ.

`PrivateNode` is also what fault tests kill with SIGKILL and restart on the same data dir.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brokers.connection import connect_failure, probe, redact, socket_reason, wait_reachable
from brokers.errors import BrokerError, BrokerUnavailable
from brokers.settings import DEFAULT_AMQP_URL, Settings

BOOT_TIMEOUT_S = 90.0
INSTALL_STEPS = """no RabbitMQ reachable and none could be started. Install one:
  Debian/Ubuntu:  sudo apt-get install rabbitmq-server   (then: sudo rabbitmq-server -detached)
  macOS:          brew install rabbitmq && brew services start rabbitmq
  with Docker:    docker run -d -p 5672:5672 rabbitmq:3.13
or point QSCHED_AMQP_URL at an existing broker."""
SERVER_CANDIDATES = (
    "/usr/lib/rabbitmq/bin/rabbitmq-server",
    "/usr/lib/rabbitmq/sbin/rabbitmq-server",
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, below the kernel's range of
    ephemeral ports: a node restarted on the same port after a kill never finds it taken by
    some client's outgoing connection (seen as eaddrinuse in the cluster test)."""
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(10_000, low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # the low range is crowded: any free port
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux: 32768 unless configured)."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text(encoding="ascii")
        return max(10_001, min(int(text.split()[0]), 65_535))
    except (OSError, ValueError, IndexError):
        return 32_768


def find_server(configured: Path | None = None) -> Path | None:
    """The rabbitmq-server launcher to run as the current user (not the su-wrapper in sbin)."""
    candidates = [str(configured)] if configured else []
    candidates += list(SERVER_CANDIDATES)
    which = shutil.which("rabbitmq-server")
    if which:
        candidates.append(which)
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


@dataclass
class PrivateNode:
    """A RabbitMQ node of our own: own node name, AMQP and distribution ports, data dir.

    Attributes:
        base_dir: temp folder with config, data, logs and the Erlang cookie.
        config_lines: extra ``rabbitmq.conf`` lines (e.g. ``consumer_timeout = 3000``).
        advanced: extra ``rabbit`` application env for ``advanced.config`` (Erlang terms).
        plugins: plugins enabled on this node only (e.g. ``rabbitmq_auth_backend_http``).
    """

    server: Path
    base_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="qsched-rmq-")))
    config_lines: tuple[str, ...] = ()
    advanced: dict[str, int] = field(default_factory=dict)
    plugins: tuple[str, ...] = ()
    amqp_port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    node_name: str = field(default_factory=lambda: f"qsched-{uuid.uuid4().hex[:8]}@localhost")
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """AMQP URL of this node (guest/guest, allowed from loopback)."""
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/%2F"

    def _env(self) -> dict[str, str]:
        base = self.base_dir
        env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        env |= {
            "HOME": str(base),
            "RABBITMQ_NODENAME": self.node_name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "rabbit.pid"),
            "RABBITMQ_FEATURE_FLAGS_FILE": str(base / "feature_flags"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(base / "plugins-expand"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }
        return env

    def environment(self) -> dict[str, str]:
        """The environment rabbitmq-server and rabbitmqctl need to reach this node."""
        return self._env()

    @property
    def rabbitmqctl(self) -> Path:
        """The rabbitmqctl beside this node's server script."""
        return self.server.with_name("rabbitmqctl")

    def _write_config(self) -> None:
        base = self.base_dir
        (base / "mnesia").mkdir(parents=True, exist_ok=True)
        (base / "log").mkdir(exist_ok=True)
        lines = [
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}",
            "loopback_users = none",
            *self.config_lines,
        ]
        (base / "rabbitmq.conf").write_text("\n".join(lines) + "\n")
        terms = ", ".join(f"{{{k}, {v}}}" for k, v in self.advanced.items())
        (base / "advanced.config").write_text(f"[{{rabbit, [{terms}]}}].\n")
        (base / "enabled_plugins").write_text(f"[{','.join(self.plugins)}].\n")
        (base / "rabbitmq-env.conf").write_text("")

    def start(self, timeout_s: float = BOOT_TIMEOUT_S) -> PrivateNode:
        """Boot the node (on its existing data dir, if any) and wait until AMQP answers.

        Raises:
            BrokerUnavailable: the node did not come up; the message has its log's tail.
        """
        self._write_config()
        log = open(self.base_dir / "server.out", "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [str(self.server)],
            env=self._env(),
            cwd=self.base_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        if not wait_reachable(self.url, timeout_s):
            tail = (self.base_dir / "server.out").read_text(errors="replace")[-2000:]
            self.kill()
            raise BrokerUnavailable(f"private RabbitMQ {self.node_name} did not start:\n{tail}")
        return self

    def kill(self) -> None:
        """SIGKILL the node's whole process group, as a crash would."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def stop(self, remove: bool = True) -> None:
        """Stop the node (SIGTERM, then SIGKILL) and delete its data dir unless `remove` is False."""
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=20)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                pass
            self.kill()
        if remove:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def restart(self, timeout_s: float = BOOT_TIMEOUT_S) -> PrivateNode:
        """Start again on the same data dir and AMQP port (after `kill` or `stop(remove=False)`).

        The distribution port is picked afresh: clients only need the AMQP port to stay, and
        on a busy machine the old distribution port can be taken while the node is down (seen
        as ``dist_port_already_used ... not_erlang``).
        """
        self.dist_port = free_port()
        return self.start(timeout_s)

    def to_state(self) -> dict[str, Any]:
        """What `qsched broker down` needs to find and stop a detached node."""
        pid = self.process.pid if self.process else None
        return {"kind": "private", "url": self.url, "pgid": pid, "base_dir": str(self.base_dir)}


@dataclass
class BrokerHandle:
    """A broker that `ensure_broker` found or started; `close` stops what it started."""

    url: str
    kind: str
    node: PrivateNode | None = None
    container: Any = None

    def close(self) -> None:
        """Stop a private node or container this handle started; leave others alone."""
        if self.node is not None:
            self.node.stop()
        if self.container is not None:
            self.container.stop()


def _docker_works() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        done = subprocess.run([docker, "info"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _start_container() -> BrokerHandle:
    try:
        from testcontainers.rabbitmq import RabbitMqContainer
    except ImportError as exc:
        raise BrokerUnavailable(f"{INSTALL_STEPS}\n(testcontainers missing: {exc})") from exc
    container = RabbitMqContainer("rabbitmq:3.13").start()
    host, port = container.get_container_host_ip(), container.get_exposed_port(5672)
    return BrokerHandle(f"amqp://guest:guest@{host}:{port}/%2F", "docker", container=container)


def ensure_broker(settings: Settings, allow_start: bool = True) -> BrokerHandle:
    """Find a reachable broker, or start one, following the chain in the module docstring.

    Args:
        settings: `amqp_url` is tried first; `rabbitmq_server` names the binary to start.
        allow_start: when False, nothing is started: only 127.0.0.1:5672 is looked for when
            no URL is configured.

    Raises:
        BrokerUnavailable: the configured URL does not answer (a broker other than the one
            asked for is never used in its place), or nothing reachable and nothing could be
            started.
        BrokerRefused: the configured broker answers but refuses its user or vhost.
    """
    failure = probe(settings.amqp_url)
    if failure is None:
        return BrokerHandle(settings.amqp_url, "configured")
    if settings.amqp_url != DEFAULT_AMQP_URL:
        raise configured_failure(settings.amqp_url, failure)
    if not allow_start:
        raise BrokerUnavailable(INSTALL_STEPS)
    server = find_server(settings.rabbitmq_server)
    if server is not None:
        node = PrivateNode(server).start()
        return BrokerHandle(node.url, "private", node=node)
    if _docker_works():
        return _start_container()
    raise BrokerUnavailable(INSTALL_STEPS)


def configured_failure(url: str, failure: BaseException) -> BrokerError:
    """The error for a configured URL that does not answer: which URL, why, and that qsched
    will not use another broker instead (jobs and owners would end up on two brokers)."""
    error = connect_failure(url, failure)
    if not isinstance(error, BrokerUnavailable):
        return error  # it answered and refused the user or vhost: that error says which
    return BrokerUnavailable(
        f"no broker answers at {redact(url)}, the configured QSCHED_AMQP_URL "
        f"({socket_reason(failure)}); qsched "
        "does not fall back to another broker when one is configured",
        hint="start the broker there, correct QSCHED_AMQP_URL, or unset it so `qsched broker up` "
        "finds or starts a local one",
    )


def state_file() -> Path:
    """Where `qsched broker up` records a detached private node for `broker down`."""
    root = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state"))
    return root / "qsched" / "broker.json"


def save_state(handle: BrokerHandle) -> None:
    """Record a detached node so a later `qsched broker down` can stop it."""
    if handle.node is None:
        return
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(handle.node.to_state()))


def stop_saved() -> str | None:
    """Stop the node recorded by `save_state`; returns its URL, or None if there was none."""
    path = state_file()
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    pgid = state.get("pgid")
    if pgid:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(int(pgid), sig)
            except ProcessLookupError:
                break
            time.sleep(2)
    shutil.rmtree(state.get("base_dir", ""), ignore_errors=True)
    path.unlink()
    return str(state.get("url"))
