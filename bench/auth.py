"""Connections per second and submit rate: MUNGE through the cached HTTP auth backend vs an
internal user, in one run on one private node (not a test; ``python -m bench auth``).

Setup: a munged of its own, `qsched auth serve`, a private RabbitMQ node configured from
`infra/rabbitmq/auth-http.conf` (internal users first; MUNGE logins through the HTTP backend,
authorisation cached), a submitter made with `brokers.users.add_user`. The MUNGE side runs as
this process's unix user, so a login costs a ``munge -n`` here and an ``unmunge`` in the
service: that is what a MUNGE client pays per connection. Needs root, MUNGE and rabbitmq-server.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pika

from brokers.bootstrap import PrivateNode, find_server, free_port
from brokers.connection import connect
from brokers.munge import connection_url
from brokers.settings import Settings, load_settings
from brokers.topology import build_topology, declare
from brokers.users import Rabbitmqctl, add_user
from producers.client import QPUClient
from schemas.policy import Policy
from tests.support.munged import AUTH_PLUGINS, Munged, auth_http_config, start_auth, stop
from tests.support.sequences import analog_sequence

NS = "benchauth"


def connections_per_s(url_of: object, count: int) -> float:
    """Open and close `count` connections, each with a URL from `url_of()`."""
    start = time.perf_counter()
    for _ in range(count):
        pika.BlockingConnection(pika.URLParameters(url_of())).close()  # type: ignore[operator]
    return count / (time.perf_counter() - start)


def submit_rate(settings: Settings, jobs: int) -> float:
    """Jobs/s for `submit_many` of `jobs` jobs on one client (connection made beforehand)."""
    with QPUClient(settings=settings, validate_locally=False) as client:
        built = [client.build_job(analog_sequence(2), 10) for _ in range(jobs)]
        start = time.perf_counter()
        client.submit_many(built)
        return jobs / (time.perf_counter() - start)


def main(jobs: int, connections: int = 100) -> None:
    """Print connections/s and submit rate for both, and their ratios."""
    server = find_server()
    if server is None:
        raise SystemExit("bench auth needs the rabbitmq-server binary")
    work = Path(tempfile.mkdtemp(prefix="qsched-bench-auth-"))
    munged = Munged().start()
    port = free_port()
    auth = start_auth(None, port, munged.socket, work / "auth.log", NS)
    node = PrivateNode(server, config_lines=auth_http_config(port), plugins=AUTH_PLUGINS)
    try:
        node.start()
        ch = connect(node.url).channel()
        declare(ch, build_topology(load_settings(namespace=NS), Policy()))
        ch.connection.close()
        ctl = Rabbitmqctl(node.rabbitmqctl, node.node_name, node.environment())
        password = add_user(ctl, "bench-internal", "submitter", NS)
        base = f"amqp://127.0.0.1:{node.amqp_port}/%2F"
        internal = load_settings(
            amqp_url=f"amqp://bench-internal:{password}@127.0.0.1:{node.amqp_port}/%2F",
            namespace=NS,
        )
        munge = load_settings(amqp_url=base, namespace=NS, auth="munge", munge_socket=munged.socket)
        rows = {
            "internal user": (
                connections_per_s(lambda: internal.amqp_url, connections),
                submit_rate(internal, jobs),
            ),
            "MUNGE via cached http": (
                connections_per_s(
                    lambda: connection_url(base, "munge", munged.socket), connections
                ),
                submit_rate(munge, jobs),
            ),
        }
    finally:
        node.stop()
        stop(auth)
        munged.stop()
    print(f"auth backends, {connections} connections and {jobs} jobs each (one run):")
    for name, (conn_s, jobs_s) in rows.items():
        print(f"  {name:<24} {conn_s:8.1f} connections/s {jobs_s:10.0f} jobs/s (submit_many)")
    (ic, ij), (mc, mj) = rows["internal user"], rows["MUNGE via cached http"]
    print(f"  ratio MUNGE/internal: connections {mc / ic:.2f}, submit {mj / ij:.2f}")
