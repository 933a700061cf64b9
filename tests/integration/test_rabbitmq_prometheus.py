"""The shipped RabbitMQ config (`infra/rabbitmq`) on a private node: rabbitmq_prometheus serves the
per-queue metrics the Grafana dashboard reads, with the class queues' real depth."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pika
import pytest
from prometheus_client.parser import text_string_to_metric_families

from brokers.bootstrap import PrivateNode, free_port
from brokers.topology import build_topology, declare
from schemas.policy import load_policy
from tests.conftest import make_settings
from tests.support.waiting import wait_until

# A private node boots in 10-30 s here, for files that rarely change: the slow tier (`make test-slow`).
pytestmark = [pytest.mark.integration, pytest.mark.slow]

INFRA = Path(__file__).resolve().parents[2] / "infra"
NODE_OWN = ("listeners.tcp.default", "prometheus.tcp.port")  # the private node sets these


def shipped_config(prometheus_port: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`rabbitmq.conf` lines and `enabled_plugins` as shipped, on this node's ports."""
    lines = [
        line.strip()
        for line in (INFRA / "rabbitmq" / "rabbitmq.conf").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    kept = [line for line in lines if not line.startswith(NODE_OWN)]
    plugins_text = (INFRA / "rabbitmq" / "enabled_plugins").read_text()
    plugins = tuple(p.strip() for p in plugins_text.strip().strip("[].").split(",") if p.strip())
    return (*kept, f"prometheus.tcp.port = {prometheus_port}"), plugins


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_shipped_config_enables_rabbitmq_prometheus_with_the_queue_depths_the_dashboard_uses(
    private_broker_factory: Callable[..., PrivateNode],
) -> None:
    port = free_port()
    config, plugins = shipped_config(port)
    assert "rabbitmq_prometheus" in plugins
    node = private_broker_factory(config_lines=config, plugins=plugins)
    settings = make_settings(node.url, "qpu")
    topology = build_topology(settings, load_policy(None))
    connection = pika.BlockingConnection(pika.URLParameters(node.url))
    try:
        channel = connection.channel()
        declare(channel, topology)
        for _ in range(3):
            channel.basic_publish("", topology.job_queue("production"), b"x")
    finally:
        connection.close()
    detailed = (
        f"http://127.0.0.1:{port}/metrics/detailed?family=queue_coarse_metrics&family=queue_metrics"
    )
    production = frozenset({("vhost", "/"), ("queue", topology.job_queue("production"))})
    samples = wait_until(
        lambda: (
            (s := scrape(detailed)).get(("rabbitmq_detailed_queue_messages_ready", production)) == 3
            and s
        ),
        "3 ready messages in the production queue's metrics",
        timeout_s=60,
    )
    dashboard = json.loads((INFRA / "grafana" / "qsched-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {n for e in exprs for n in re.findall(r"\brabbitmq_[a-z0-9_]+", e)}
    served = {name for name, _ in samples}
    assert used and used <= served, f"not served: {sorted(used - served)}"
    assert scrape(f"http://127.0.0.1:{port}/metrics")  # the aggregated endpoint answers too
