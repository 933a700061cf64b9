"""The owner's metrics fed from a real `OwnerState` driven by `step`/`apply`, and the shipped
Grafana dashboard checked against the registry's names."""

from __future__ import annotations

import json
import re
import socket
import time
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from consumers.core.step import Dispatch, Finished, LaneDispatch
from consumers.errors import MetricsUnavailable
from consumers.owner.metrics import OwnerMetrics, serve_metrics
from schemas.envelope import Event
from schemas.jobs import SlurmContext
from schemas.policy import Policy, parse_policy
from tests.unit.core_harness import POLICY, Harness
from tests.unit.test_owner_state import RANDOM_POLICY

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "infra" / "grafana" / "qsched-dashboard.json"
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
}


class MeteredHarness(Harness):
    """The core harness, with the owner's metrics seeing every applied event."""

    def __init__(self, policy: Policy = POLICY) -> None:
        self.metrics = OwnerMetrics(lambda: True, policy, refresh_s=0.0)
        super().__init__(policy)

    def emit(self, events: list[Event]) -> None:
        for event in events:
            super().emit([event])
            self.metrics.seen(self.log[-1], self.state)

    def end_iteration(self) -> None:
        self.metrics.after_iteration(self.state, self.policy)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_waiting_counts_wait_histogram_final_states_and_busy_time_follow_the_events() -> None:
    h = MeteredHarness()
    physics = SlurmContext(job_id="7", account="physics")
    first = h.submit(slurm=physics)
    h.submit(slurm=physics)
    h.submit(job_class="development")
    h.end_iteration()
    r = h.metrics.registry
    assert sample(r, "qsched_waiting_jobs", job_class="production") == 2
    assert sample(r, "qsched_waiting_jobs", job_class="development") == 1
    assert sample(r, "qsched_waiting_jobs_by_account", account="physics") == 2
    assert sample(r, "qsched_waiting_jobs_by_account", account="") == 1
    assert sample(r, "qsched_jobs_accepted_total", job_class="production") == 2
    assert sample(r, "qsched_qpu_state", state="IDLE") == 1
    assert sample(r, "qsched_job_wait_seconds_count", job_class="production") == 0

    h.now += timedelta(seconds=30)
    h.feed(Dispatch())
    assert h.started == [first]
    h.finish_running()  # 1 s on the QPU
    h.end_iteration()
    assert sample(r, "qsched_waiting_jobs", job_class="production") == 1
    assert sample(r, "qsched_job_wait_seconds_count", job_class="production") == 1
    wait_s = sample(r, "qsched_job_wait_seconds_sum", job_class="production") or 0
    assert 30 <= wait_s < 31, wait_s  # accepted at T0 + ~1 ms, started 30 s later
    assert sample(r, "qsched_job_wait_seconds_bucket", job_class="production", le="10.0") == 0
    assert sample(r, "qsched_jobs_finished_total", job_class="production", state="DONE") == 1
    assert sample(r, "qsched_qpu_busy_seconds_total") == 1.0
    assert sample(r, "qsched_dispatch_latency_seconds_count") == 1


def test_intake_latency_is_observed_once_per_job_and_a_standby_reports_no_state() -> None:
    active = [True]
    metrics = OwnerMetrics(lambda: active[0], refresh_s=0.0)
    h = Harness()
    metrics.intake_done(3, 0.004)
    metrics.after_iteration(h.state, POLICY)
    r = metrics.registry
    assert sample(r, "qsched_intake_latency_seconds_count") == 3
    assert sample(r, "qsched_intake_latency_seconds_sum") == 3 * 0.004
    assert sample(r, "qsched_owner_active") == 1
    active[0] = False
    metrics.standby()
    assert sample(r, "qsched_owner_active") == 0
    assert sample(r, "qsched_waiting_jobs", job_class="production") is None
    assert sample(r, "qsched_qpu_state", state="IDLE") is None


def test_the_snapshot_is_refreshed_at_most_every_refresh_s() -> None:
    metrics = OwnerMetrics(lambda: True, refresh_s=3600.0)
    h = Harness()
    metrics.after_iteration(h.state, POLICY)
    h.submit()
    metrics.after_iteration(h.state, POLICY)  # within refresh_s: the gauges keep the old value
    registry = metrics.registry
    assert sample(registry, "qsched_waiting_jobs", job_class="production") == 0
    metrics.refresh(h.state, POLICY, h.now, time.monotonic())
    assert sample(registry, "qsched_waiting_jobs", job_class="production") == 1


def test_each_budget_in_force_reports_its_seconds_spent_and_left_this_period() -> None:
    """Given a 100 s monthly budget of account physics, a 1 s QPU run of physics reads as
    100 s budget, 1 s spent, 99 s left (the dashboard's budget panels)."""
    policy = parse_policy(
        RANDOM_POLICY + '[[budgets.limits]]\naccount = "physics"\nseconds = 100\n'
    )
    h = MeteredHarness(policy)
    h.submit(slurm=SlurmContext(job_id="7", account="physics"))
    h.feed(Dispatch())
    h.finish_running()  # 1 s on the QPU
    h.metrics.refresh(h.state, policy, h.now, time.monotonic())
    r = h.metrics.registry
    labels = {"account": "physics", "user": ""}
    assert sample(r, "qsched_budget_seconds", **labels) == 100
    assert sample(r, "qsched_budget_spent_seconds", **labels) == 1
    assert sample(r, "qsched_budget_left_seconds", **labels) == 99


def registry_names(metrics: OwnerMetrics) -> set[str]:
    names: set[str] = set()
    for family in metrics.registry.collect():
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    return names


def test_every_qsched_metric_the_grafana_dashboard_uses_is_in_the_owner_registry() -> None:
    h = Harness()
    metrics = OwnerMetrics(lambda: True, refresh_s=0.0)
    metrics.after_iteration(h.state, POLICY)  # active: the state gauges are reported
    known = registry_names(metrics)
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    used = {name for expr in exprs for name in re.findall(r"\bqsched_[a-z0-9_]+", expr)}
    assert len(used) >= 12, used
    assert used <= known, f"unknown in the registry: {sorted(used - known)}"
    # every metric the owner serves has a panel (the dashboard is complete, not a sample)
    served = {f.name for f in metrics.registry.collect()}
    assert all(any(u.startswith(name) for u in used) for name in served), served


def test_a_metrics_port_in_use_is_one_error_naming_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MetricsUnavailable, match=f"127.0.0.1:{port}") as raised:
            serve_metrics(OwnerMetrics(lambda: False), "127.0.0.1", port)
    assert "QSCHED_OWNER__METRICS_PORT" in raised.value.hint


def test_lane_runs_are_counted_per_lane_and_their_time_is_not_qpu_time() -> None:
    h = MeteredHarness(parse_policy(RANDOM_POLICY))  # two lanes; development may use them
    h.submit(job_class="production", shots=1000)
    h.feed(Dispatch())
    development = h.submit(job_class="development", shots=10)
    h.now += timedelta(seconds=5)
    h.feed(LaneDispatch("emulator-1", "abc123"))
    h.end_iteration()
    r = h.metrics.registry
    assert sample(r, "qsched_lane_busy", lane="emulator-1") == 1
    assert sample(r, "qsched_lane_busy", lane="emulator-2") == 0
    assert sample(r, "qsched_lane_runs_total", lane="emulator-1", job_class="development") == 1
    assert sample(r, "qsched_job_wait_seconds_sum", job_class="development") == 5.0

    h.now += timedelta(seconds=3)
    h.feed(Finished(development, {"00": 10}))
    h.finish_running()  # the production job: 9 s on the QPU in all, a lane run in the middle
    h.end_iteration()
    assert sample(r, "qsched_lane_busy", lane="emulator-1") == 0
    assert sample(r, "qsched_jobs_finished_total", job_class="development", state="DONE") == 1
    assert h.metrics.snapshot().busy_closed_s == pytest.approx(9.001)  # a scrape saw it run


def _samples(metrics: OwnerMetrics) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for f in metrics.registry.collect() for s in f.samples]


def test_every_labelled_series_is_there_at_zero_from_the_owners_start() -> None:
    """Given an owner that saw no event yet, the dashboard's counters already read 0 for every
    class, final state and lane of the policy (Grafana draws 0, not "No data")."""
    policy = parse_policy(RANDOM_POLICY)
    metrics = OwnerMetrics(lambda: True, policy, refresh_s=0.0)
    r = metrics.registry
    for job_class in policy.class_names:
        assert sample(r, "qsched_preemptions_total", job_class=job_class) == 0
        assert sample(r, "qsched_jobs_accepted_total", job_class=job_class) == 0
        assert sample(r, "qsched_job_wait_seconds_count", job_class=job_class) == 0
        for state in ("DONE", "ERROR", "CANCELED", "REJECTED", "TIMED_OUT"):
            assert sample(r, "qsched_jobs_finished_total", job_class=job_class, state=state) == 0
        for lane in policy.lanes.names:
            assert sample(r, "qsched_lane_runs_total", lane=lane, job_class=job_class) == 0


def test_series_carry_the_namespace_no_owner_id_and_no_created_unless_asked() -> None:
    h = Harness()
    plain = OwnerMetrics(lambda: True, POLICY, namespace="site-a", refresh_s=0.0)
    plain.after_iteration(h.state, POLICY)
    served = _samples(plain)
    assert served and all(labels.get("namespace") == "site-a" for _, labels, _ in served)
    assert ("qsched_owner_active", {"namespace": "site-a"}, 1.0) in served
    assert not [name for name, _, _ in served if name.endswith("_created")]
    created = OwnerMetrics(lambda: True, POLICY, created_series=True)
    assert [name for name, _, _ in _samples(created) if name.endswith("_created")]


def test_calibration_gauges_count_from_the_backends_calibration_until_an_operators() -> None:
    """Given no calibration in the log, the gauges count from the backend's calibration time
    (when it took the device specs); a logged calibration takes over."""
    h = Harness()
    backend_at = h.now - timedelta(seconds=120)
    metrics = OwnerMetrics(lambda: True, POLICY, refresh_s=0.0, calibrated_at=lambda: backend_at)
    metrics.after_iteration(h.state, POLICY)
    assert metrics.snapshot().calibrated_at == backend_at
    assert (sample(metrics.registry, "qsched_calibration_age_seconds") or 0) >= 120
    h.state.calibrated_at = h.now
    metrics.refresh(h.state, POLICY, h.now, time.monotonic())
    assert metrics.snapshot().calibrated_at == h.now


def test_an_account_whose_jobs_all_left_reads_zero_not_no_data() -> None:
    h = MeteredHarness()
    h.submit(slurm=SlurmContext(job_id="7", account="physics"))
    h.end_iteration()
    assert sample(h.metrics.registry, "qsched_waiting_jobs_by_account", account="physics") == 1
    h.feed(Dispatch())
    h.end_iteration()
    assert sample(h.metrics.registry, "qsched_waiting_jobs_by_account", account="physics") == 0


def test_every_qsched_series_the_dashboard_reads_is_filtered_by_its_namespace_variable() -> None:
    """The dashboard's namespace is a variable (not a hidden constant): every qsched selector
    and every RabbitMQ queue selector uses it, and it lists the namespaces the owners report."""
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["namespace"]["type"] == "query" and variables["namespace"].get("hide", 0) == 0
    assert "label_values(qsched_owner_active, namespace)" in json.dumps(variables["namespace"])
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    for expr in exprs:
        for name, selector in re.findall(r"\b(qsched_[a-z0-9_]+)(\{[^}]*\})?", expr):
            assert 'namespace="$namespace"' in selector, (name, expr)
        if "rabbitmq_" in expr:
            assert "$namespace" in expr, expr
