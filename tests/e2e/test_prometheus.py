"""The owner's metrics as the standard tools read them: `promtool check metrics` on a live
owner's /metrics (no lint warning), `promtool check config` on the shipped scrape configuration,
and (slow tier) a real Prometheus scraping a live owner and its RabbitMQ node with the shipped
configuration, where every expression of the shipped Grafana dashboard returns data after a
workload that exercises it: a preemption, a lane run, a calibration, a canceled job (and a
budget of the policy, for the budget panels)."""

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from brokers.bootstrap import PrivateNode, free_port
from producers.client import QPUClient
from schemas import CommandName, JobState
from tests.conftest import OwnerHarness, make_settings
from tests.e2e.prometheus import (
    SHIPPED_CONFIG,
    Prometheus,
    dashboard_exprs,
    scrape_text,
    site_config,
    tool,
)
from tests.integration.test_metrics import METRICS_ENV, metrics_url
from tests.support.owners import start_owner, wait_active, wait_running
from tests.support.sequences import analog_sequence
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e
SEQ = analog_sequence(2)
POLICY = """
calibration_valid_s = 3600
[lanes]
emulators = 1
[classes.calibration]
rank = 0
preempts = ["production", "development"]
calibrates = true
[classes.production]
rank = 1
preempts = ["development"]
[classes.development]
rank = 2
placement = { production = "either", development = "either", maintenance = "emulator" }
[[budgets.limits]]
account = "physics"
seconds = 3600
"""


def _promtool_check_metrics(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("promtool"), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )


def test_promtool_finds_nothing_to_lint_in_a_live_owners_metrics(
    owners: OwnerHarness, tmp_path: Path
) -> None:
    """Given an owner that ran, preempted and canceled jobs, `promtool check metrics` on its
    /metrics exits 0 and prints no lint warning; the shipped scrape config is valid."""
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    owner = owners.start(
        "--backend", "synthetic", "--shot-rate", "400", "--policy", str(policy), env=METRICS_ENV
    )
    client = owners.client()
    dev = client.submit(SEQ, 1200, job_class="development", require_qpu=True)
    wait_running(client, dev.job_id)
    assert client.submit(SEQ, 20, job_class="production").result(timeout=60).state is JobState.DONE
    assert dev.cancel().ok
    text = scrape_text(metrics_url(owner))
    checked = _promtool_check_metrics(text)
    assert checked.returncode == 0 and not (checked.stdout + checked.stderr).strip(), (
        checked.stdout + checked.stderr
    )
    assert "qsched_preemptions_total" in text and "_created" not in text
    config = subprocess.run(
        [tool("promtool"), "check", "config", str(SHIPPED_CONFIG)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert config.returncode == 0, config.stdout + config.stderr


def _rabbitmq_node(factory: Callable[..., PrivateNode]) -> tuple[PrivateNode, int]:
    port = free_port()
    node = factory(
        (f"prometheus.tcp.port = {port}", "prometheus.tcp.ip = 127.0.0.1"),
        plugins=("rabbitmq_prometheus",),
    )
    return node, port


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_dashboard_expression_returns_data_from_a_real_prometheus(
    private_broker_factory: Callable[..., PrivateNode], tmp_path: Path
) -> None:
    node, rabbit_port = _rabbitmq_node(private_broker_factory)
    namespace = "qpu"
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    owner = start_owner(
        node.url,
        namespace,
        tmp_path,
        "--backend",
        "synthetic",
        "--shot-rate",
        "400",
        "--policy",
        str(policy),
        env=METRICS_ENV,
    )
    try:
        owner_target = metrics_url(owner).removeprefix("http://").removesuffix("/metrics")
        config = site_config(owner_target, f"127.0.0.1:{rabbit_port}")
        with Prometheus(tmp_path, config) as prometheus:
            wait_until(
                lambda: set(prometheus.targets_up().values()) == {"up"},
                "every scrape target up",
                timeout_s=60,
                step=lambda: time.sleep(0.5),
            )
            client = QPUClient(settings=make_settings(node.url, namespace))
            wait_active(client, timeout_s=60)
            _workload(client)
            results = _evaluate(prometheus, namespace)
        (tmp_path / "dashboard-expressions.txt").write_text(
            "\n".join(f"{ok}\t{title}\t{expr}" for title, expr, ok in results)
        )
        empty = [(title, expr) for title, expr, ok in results if not ok]
        assert len(results) >= 25
        assert not empty, f"dashboard expressions without data: {empty}"
    finally:
        owner.stop()


def _workload(client: QPUClient) -> None:
    """A preemption, a lane run, a canceled job, a calibration, jobs that queued, and a session
    of two iterations."""
    dev = client.submit(SEQ, 2000, job_class="development", require_qpu=True)  # ~5 s
    wait_running(client, dev.job_id)
    lane = client.submit(SEQ, 10, job_class="development")  # the QPU is busy: a lane
    prod = [client.submit(SEQ, 20, job_class="production") for _ in range(3)]  # preempt dev
    assert lane.result(timeout=120).lane is not None
    assert all(h.result(timeout=120).state is JobState.DONE for h in prod)
    assert dev.result(timeout=120).preemptions >= 1
    doomed = client.submit(SEQ, 20, job_class="development", require_qpu=True)
    assert client.control(CommandName.PAUSE).ok
    assert doomed.cancel().ok or True  # it may have started before the pause
    assert client.control(CommandName.RESUME).ok
    assert client.control(CommandName.CALIBRATION_START).ok
    assert client.control(CommandName.CALIBRATION_COMPLETE).ok
    tail = [client.submit(SEQ, 20, job_class="production") for _ in range(2)]
    assert all(h.result(timeout=120).state is JobState.DONE for h in tail)
    session = client.open_session(job_class="production")  # two iterations: one gap
    for _ in range(2):
        loop = client.submit(SEQ, 20, job_class="production", session_id=session)
        assert loop.result(timeout=120).state is JobState.DONE
    client.close_session(session)


def _evaluate(prometheus: Prometheus, namespace: str) -> list[tuple[str, str, bool]]:
    """Each dashboard expression and whether it returned a finite value, once the samples of
    the workload's end are in (a few scrapes later)."""
    exprs = dashboard_exprs(namespace, "1m")
    results: list[tuple[str, str, bool]] = []

    def answered() -> bool:
        results.clear()
        for title, expr in exprs:
            vector = prometheus.query(expr)
            finite = [s for s in vector if not math.isnan(float(s["value"][1]))]
            results.append((title, expr, bool(finite)))
        return all(ok for _, _, ok in results)

    deadline = time.monotonic() + 30
    while not answered() and time.monotonic() < deadline:
        time.sleep(1)
    return results
