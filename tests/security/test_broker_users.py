"""`qsched broker users add`: one user per role, least privilege enforced by RabbitMQ itself.

Runs on a private node (users are added with rabbitmqctl); the shared broker is never touched.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pika
import pika.exceptions
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from brokers.bootstrap import PrivateNode
from brokers.connection import connect
from brokers.settings import load_settings
from brokers.stream import fetch_last_record
from brokers.topology import build_topology, declare
from brokers.users import Rabbitmqctl, add_user, new_password, role_permissions
from schemas.codec import decode_any, encode
from schemas.messages import DeviceSpecs
from schemas.policy import Policy
from tests.security.access import consume, matrix, outcome, publish

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]  # a private node under load
QSCHED = str(Path(sys.executable).with_name("qsched"))
NS = "sec"


def add(node: PrivateNode, name: str, role: str) -> str:
    """Run the real CLI against the node; returns the printed password."""
    env = node.environment() | {"QSCHED_NAMESPACE": NS, "QSCHED_AMQP_URL": node.url}
    done = subprocess.run(
        [
            QSCHED,
            "broker",
            "users",
            "add",
            name,
            "--role",
            role,
            "--node",
            node.node_name,
            "--rabbitmqctl",
            str(node.rabbitmqctl),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("password: ")]
    assert len(lines) == 1, done.stdout
    return lines[0].removeprefix("password: ")


def url_of(node: PrivateNode, user: str, password: str) -> str:
    return f"amqp://{quote(user)}:{quote(password, safe='')}@127.0.0.1:{node.amqp_port}/%2F"


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_roles_get_least_privilege_from_the_broker(private_broker: PrivateNode) -> None:
    topology = build_topology(load_settings(namespace=NS), Policy())
    ch = connect(private_broker.url).channel()
    declare(ch, topology)
    ch.queue_declare(topology.reply_queue("bob", "c1"), auto_delete=False)
    ch.queue_declare(topology.reply_queue("alice.x", "c1"), auto_delete=False)
    ch.connection.close()

    alice = add(private_broker, "alice", "submitter")
    oscar = add(private_broker, "oscar", "operator")
    epilog = add(private_broker, "slurm-epilog", "epilog")
    assert len({alice, oscar, epilog}) == 3 and all(len(p) >= 24 for p in (alice, oscar, epilog))

    seen = matrix(topology, url_of(private_broker, "alice", alice), "alice", "bob")
    assert seen == {
        "publish a job as self": "ok",
        "publish a job as another user_id": "406",
        "declare own reply queue": "ok",
        "declare another user's reply queue": "403",
        "consume another user's reply queue": "403",
        "consume the event log": "403",
        "consume a class queue": "403",
        "send control.pause": "403",
        "send control.cancel": "ok",
        "publish to the event exchange": "403",
        "declare a queue in the namespace": "403",
    }
    dotted = consume(topology.reply_queue("alice.x", "c1"))  # a dotted name's own queue
    assert outcome(url_of(private_broker, "alice", alice), dotted) == "403"
    operator_url = url_of(private_broker, "oscar", oscar)
    assert (
        outcome(operator_url, publish(topology.control_exchange, "control.pause", "oscar")) == "ok"
    )
    assert outcome(operator_url, consume(topology.events_stream, stream=True)) == "ok"
    assert outcome(operator_url, publish(topology.jobs_exchange, "production", "oscar")) == "403"
    epilog_url = url_of(private_broker, "slurm-epilog", epilog)
    ended = publish(topology.control_exchange, "control.allocation-ended", "slurm-epilog")
    assert outcome(epilog_url, ended) == "ok"
    assert (
        outcome(epilog_url, publish(topology.control_exchange, "control.cancel", "slurm-epilog"))
        == "403"
    )

    # Running it again resets the password: the old one stops working.
    again = add(private_broker, "alice", "submitter")
    assert again != alice
    assert (
        outcome(
            url_of(private_broker, "alice", again),
            publish(topology.jobs_exchange, "production", "alice"),
        )
        == "ok"
    )


def test_role_regexes_name_the_user_and_escape_it() -> None:
    perms = role_permissions("submitter", "a.b", "qpu")
    assert perms.configure == r"^(qpu\.reply\.a\.b\.[^.]+)$"
    own = re.compile(role_permissions("submitter", "al", "qpu").configure)
    assert own.fullmatch("qpu.reply.al.c1")
    assert not own.fullmatch("qpu.reply.al.x.c1")  # user al.x's queue is not al's
    assert perms.write == r"^(qpu\.jobs|qpu\.control)$"
    assert r"qpu\.events" not in perms.read
    owner = role_permissions("owner", "svc", "qpu")
    assert "amq\\.default" in owner.write
    with pytest.raises(ValueError, match="unknown role"):
        role_permissions("root", "x", "qpu")  # type: ignore[arg-type]


def test_new_passwords_never_look_like_an_option() -> None:
    assert not any(new_password().startswith("-") for _ in range(2000))


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_a_password_starting_with_a_dash_is_set_not_read_as_an_option(
    private_broker: PrivateNode,
) -> None:
    ctl = Rabbitmqctl(
        private_broker.rabbitmqctl, private_broker.node_name, private_broker.environment()
    )
    for password in ("-dash-first", "--also-dashes"):  # set, then reset (change_password)
        assert add_user(ctl, "dashy", "submitter", NS, password=password) == password
        ctl.run("authenticate_user", "--", "dashy", password, secret=password)


def _tried(url: str, attempt: Callable[[BlockingChannel], Any]) -> str:
    """`outcome`, also when the broker closes the whole connection (a stream answers some
    methods with a connection error)."""
    try:
        return outcome(url, attempt)
    except pika.exceptions.ConnectionClosedByBroker as exc:
        return str(exc.reply_code)


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_a_submitter_reads_the_device_specs_and_cannot_take_or_purge_them(
    private_broker: PrivateNode,
) -> None:
    """Given the owner's device specs on a namespace, when a submitter made with `qsched broker
    users add` reads them, then it gets them; its basic.get+ack, purge and delete of the specs
    are refused, and every reader still finds the specs afterwards (issue 19, finding 9: a
    classic queue let a submitter take or purge them)."""
    topology = build_topology(load_settings(namespace=NS), Policy())
    admin = connect(private_broker.url)
    declare(admin.channel(), topology)
    specs = DeviceSpecs(device='{"name": "specs-under-test"}', epoch=3, backend="synthetic")
    publisher = admin.channel()
    publisher.confirm_delivery()
    publisher.basic_publish(
        "",
        topology.device_queue,
        encode(specs),
        pika.BasicProperties(type=DeviceSpecs.type_name(), delivery_mode=2),
    )
    alice = url_of(private_broker, "alice", add(private_broker, "alice", "submitter"))
    device = topology.device_queue

    def take(ch: BlockingChannel) -> None:
        method, _, _ = ch.basic_get(device, auto_ack=True)
        assert method is None, "a submitter took the device specs"

    def read(ch: BlockingChannel) -> None:
        record = fetch_last_record(ch.connection, device, 5.0, 0.05)
        assert record is not None and b"specs-under-test" in record.body

    assert _tried(alice, take) != "ok"
    assert _tried(alice, lambda ch: ch.queue_purge(device)) != "ok"
    assert _tried(alice, lambda ch: ch.queue_delete(device)) == "403"
    assert _tried(alice, read) == "ok"
    assert _tried(alice, read) == "ok"  # reading removed nothing
    last = fetch_last_record(admin, device, 5.0, 0.05)
    assert last is not None and decode_any(last.body, last.properties.type) == specs
    admin.close()
