"""`qsched broker up|declare|down` and `qsched demo` as real processes."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pika.exceptions
import pytest

from brokers.bootstrap import BrokerHandle, PrivateNode, free_port, save_state
from brokers.connection import is_reachable
from brokers.topology import build_topology
from schemas.policy import Policy
from tests.conftest import BrokerFixture, make_settings
from tests.support.environment import client_env, run_group
from tests.support.owners import QSCHED

pytestmark = pytest.mark.e2e


def test_broker_declare_creates_every_queue_and_is_idempotent(broker: BrokerFixture) -> None:
    settings = make_settings(broker.url, f"t{uuid.uuid4().hex[:10]}")
    topology = build_topology(settings, Policy())
    broker.extra_topologies.append(topology)  # deleted at teardown
    env = client_env(broker.url, settings.namespace)
    first = run_group([QSCHED, "broker", "declare", "--json"], env, 60)
    assert first.returncode == 0, first.stderr
    again = run_group([QSCHED, "broker", "declare"], env, 60)
    assert again.returncode == 0, again.stderr
    assert settings.namespace in again.stdout
    rows = {  # JSON lines: one object per exchange or queue
        row["name"]: row for row in map(json.loads, first.stdout.splitlines()) if row
    }
    ch = broker.channel()
    for queue in topology.queues():
        assert queue.name in rows
        ch.queue_declare(queue.name, passive=True)  # raises if it was not declared
    for exchange in topology.exchanges():
        ch.exchange_declare(exchange.name, passive=True)


def test_broker_up_reports_the_configured_broker_and_records_nothing(
    broker: BrokerFixture, tmp_path: Path
) -> None:
    env = client_env(broker.url, "unused", XDG_STATE_HOME=str(tmp_path))
    up = run_group([QSCHED, "broker", "up", "--no-start"], env, 60)
    assert up.returncode == 0, up.stderr
    assert up.stdout.startswith("broker (configured):")
    assert not (tmp_path / "qsched" / "broker.json").exists()
    down = run_group([QSCHED, "broker", "down"], env, 60)
    assert down.returncode == 0 and "no private node was started" in down.stdout


def test_broker_up_with_a_configured_url_where_nothing_listens_says_so_and_uses_no_other(
    broker: BrokerFixture, tmp_path: Path
) -> None:
    """Given QSCHED_AMQP_URL on a closed port (and a broker answering elsewhere), `broker up`
    exits 1 naming that URL, why (connection refused) and that it uses no other broker, prints
    no `export` and records nothing (before: it used 127.0.0.1:5672 and printed its export)."""
    port = free_port()
    env = client_env(f"amqp://alice:s3cret@127.0.0.1:{port}/%2F", "unused")
    env["XDG_STATE_HOME"] = str(tmp_path)
    up = run_group([QSCHED, "broker", "up"], env, 60)
    assert up.returncode == 1, up.stdout + up.stderr
    line = up.stderr.strip()
    assert f"no broker answers at amqp://alice:***@127.0.0.1:{port}/%2F" in line, line
    assert "QSCHED_AMQP_URL (Connection refused)" in line and "fall back" in line, line
    assert up.stdout == "" and "s3cret" not in line
    assert not (tmp_path / "qsched").exists()


@pytest.mark.chaos
def test_broker_down_stops_the_private_node_that_broker_up_recorded(
    private_broker: PrivateNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a private node recorded as `broker up` records one, `broker down` stops it."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    save_state(BrokerHandle(private_broker.url, "private", node=private_broker))
    assert is_reachable(private_broker.url)
    env = client_env(private_broker.url, "unused", XDG_STATE_HOME=str(tmp_path))
    down = run_group([QSCHED, "broker", "down"], env, 60)
    assert down.returncode == 0, down.stderr
    assert down.stdout.startswith("stopped ")
    assert private_broker.process is not None
    private_broker.process.wait(timeout=30)
    assert not is_reachable(private_broker.url)
    assert not private_broker.base_dir.exists()


def test_demo_runs_the_whole_product_once_and_deletes_its_namespace(
    broker: BrokerFixture, tmp_path: Path
) -> None:
    env = client_env(broker.url, "unused", TMPDIR=str(tmp_path))
    args = ["demo", "--ranks", "2", "--jobs-per-rank", "1", "--shots", "50"]
    demo = run_group([QSCHED, *args], env, timeout_s=300)
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert "owner active" in demo.stdout
    assert re.search(r"2 runs: \{'DONE': 2\}", demo.stdout), demo.stdout
    html = re.search(r"HTML timeline: (\S+)", demo.stdout)
    perfetto = re.search(r"Perfetto trace: (\S+)", demo.stdout)
    assert html is not None and perfetto is not None, demo.stdout  # it ends with both paths
    assert Path(html.group(1)).read_text().count('class="bar qpu s-DONE"') == 2
    runs = [
        e
        for e in json.loads(Path(perfetto.group(1)).read_text())["traceEvents"]
        if e.get("cat") == "run"
    ]
    assert len(runs) == 2
    namespace = re.search(r"namespace: (demo[0-9a-f]+)", demo.stdout)
    assert namespace is not None
    ch = broker.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as gone:
        ch.queue_declare(f"{namespace.group(1)}.jobs.production", passive=True)
    assert gone.value.reply_code == 404
