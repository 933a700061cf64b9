"""What a Prometheus scrape of the owner reads: the `Snapshot` the owner's loop builds, the
collector that turns the latest one into gauges at scrape time (`consumers.owner.metrics` feeds it),
and `Exposed`, which serves a registry with the owner's ``namespace`` label on every series and
without the ``*_created`` series unless asked.

The collector runs on the HTTP server's thread and only reads a frozen snapshot through
`SnapshotSource`; time-dependent values (calibration age, busy seconds of the current run) are
derived at scrape time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from schemas.enums import Mode, QPUState
from schemas.wire import utc_now

UTILISATION_WINDOW_S = 300.0


@dataclass(frozen=True)
class BudgetFigures:
    """One budget in force this period (`consumers.core.budget_rules.statuses`): its account,
    its user ('' for the account's own), its seconds with top-ups, what was spent and is left."""

    account: str
    user: str
    total_s: float
    spent_s: float
    left_s: float


@dataclass(frozen=True)
class Snapshot:
    """What a scrape reports of the owner's state, built in the owner's loop."""

    active: bool = False
    qpu: QPUState | None = None
    mode: Mode | None = None
    epoch: int = 0
    calibrated_at: datetime | None = None
    calibration_valid_s: float | None = None
    waiting_by_class: dict[str, int] = field(default_factory=dict)
    waiting_by_account: dict[str, int] = field(default_factory=dict)
    running_since: datetime | None = None
    busy_closed_s: float = 0.0
    utilisation: float = 0.0
    lanes_busy: dict[str, bool] = field(default_factory=dict)
    sessions_open: dict[str, int] = field(default_factory=dict)  # explicit / implicit
    usage_by_account: dict[str, dict[str, float]] = field(default_factory=dict)  # the ledger's
    budgets: tuple[BudgetFigures, ...] = ()  # every budget in force, this period


class SnapshotSource(Protocol):
    """What the collector asks of the owner's metrics (`consumers.owner.metrics.OwnerMetrics`)."""

    def snapshot(self) -> Snapshot:
        """The latest snapshot."""
        ...

    def active(self) -> bool:
        """Whether this owner holds the QPU lease now."""
        ...

    def busy_s(self, snap: Snapshot, now: datetime) -> float:
        """QPU busy seconds at `now`, never decreasing."""
        ...


def since(at: datetime | None, now: datetime) -> float:
    """Seconds from `at` to `now` (0 when `at` is None or later)."""
    return max((now - at).total_seconds(), 0.0) if at is not None else 0.0


class SnapshotCollector(Collector):
    """The gauges of the state, read from the latest snapshot at scrape time."""

    def __init__(self, metrics: SnapshotSource) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        snap = self.metrics.snapshot()
        active = self.metrics.active() and snap.active
        now = utc_now()
        yield _gauge(
            "qsched_owner_active",
            "1 while this owner holds the QPU lease, 0 on a standby",
            1.0 if active else 0.0,
        )
        yield CounterMetricFamily(
            "qsched_qpu_busy_seconds",
            "Seconds the QPU spent running jobs under this owner (rate() = utilisation)",
            value=self.metrics.busy_s(snap, now),
        )
        if not active:
            return
        yield _one_hot(
            "qsched_qpu_state",
            "The QPU state (1 for the current one)",
            "state",
            [s.value for s in QPUState],
            snap.qpu.value if snap.qpu else None,
        )
        yield _one_hot(
            "qsched_mode",
            "The site mode in force (1 for the current one)",
            "mode",
            [m.value for m in Mode],
            snap.mode.value if snap.mode else None,
        )
        yield _gauge(
            "qsched_qpu_utilisation_ratio",
            f"Share of the last {UTILISATION_WINDOW_S:.0f} s the QPU was running a job",
            snap.utilisation,
        )
        yield _gauge("qsched_calibration_epoch", "The calibration epoch jobs run under", snap.epoch)
        age = GaugeMetricFamily(
            "qsched_calibration_age_seconds", "Seconds since the last calibration completed"
        )
        left = GaugeMetricFamily(
            "qsched_calibration_valid_seconds_left",
            "Seconds until the calibration window closes (negative: expired)",
        )
        if snap.calibrated_at is not None:
            age_s = since(snap.calibrated_at, now)
            age.add_metric([], age_s)
            if snap.calibration_valid_s is not None:
                left.add_metric([], snap.calibration_valid_s - age_s)
        yield age
        yield left
        yield _labelled(
            "qsched_waiting_jobs",
            "Jobs waiting in the backlog, per class",
            "job_class",
            snap.waiting_by_class,
        )
        lanes = GaugeMetricFamily(
            "qsched_lane_busy",
            "1 while an emulator lane runs a job, 0 while it is free",
            labels=["lane"],
        )
        for name, busy in sorted(snap.lanes_busy.items()):
            lanes.add_metric([name], 1.0 if busy else 0.0)
        yield lanes
        yield _labelled(
            "qsched_sessions_open",
            "Open sessions (QRMI acquire, SDK, Pulser open batch: explicit; by a job: implicit)",
            "kind",
            snap.sessions_open,
        )
        yield _labelled(
            "qsched_waiting_jobs_by_account",
            "Jobs waiting in the backlog, per Slurm account ('' for none)",
            "account",
            snap.waiting_by_account,
        )
        yield from _usage_counters(snap.usage_by_account)
        yield from _budget_gauges(snap.budgets)


USAGE_COUNTERS = (
    ("qsched_account_qpu_seconds", "qpu_s", "QPU seconds used, per account (the ledger's)"),
    ("qsched_account_shots", "shots", "Shots measured on the QPU, per account"),
    ("qsched_account_emulator_seconds", "emulator_s", "Emulator-lane seconds, per account"),
    ("qsched_account_jobs", "jobs", "Jobs that ended, per account"),
)


def _usage_counters(usage: dict[str, dict[str, float]]) -> Iterator[Metric]:
    """The ledger's all-time totals per account ('' for none) as counters: folded from the log,
    so a failover continues them where the last owner left them instead of restarting at 0."""
    for name, figure, doc in USAGE_COUNTERS:
        family = CounterMetricFamily(name, doc, labels=["account"])
        for account, figures in sorted(usage.items()):
            family.add_metric([account], figures.get(figure, 0.0))
        yield family


BUDGET_GAUGES = (
    ("qsched_budget_seconds", "total_s", "QPU seconds of each budget this period, top-ups in"),
    ("qsched_budget_spent_seconds", "spent_s", "QPU seconds spent of each budget this period"),
    ("qsched_budget_left_seconds", "left_s", "QPU seconds left of each budget this period"),
)


def _budget_gauges(budgets: tuple[BudgetFigures, ...]) -> Iterator[Metric]:
    """Each budget in force (account, and user: '' for the account's own budget)."""
    for name, figure, doc in BUDGET_GAUGES:
        family = GaugeMetricFamily(name, doc, labels=["account", "user"])
        for budget in sorted(budgets, key=lambda b: (b.account, b.user)):
            family.add_metric([budget.account, budget.user], getattr(budget, figure))
        yield family


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _labelled(name: str, doc: str, label: str, values: dict[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def _one_hot(name: str, doc: str, label: str, names: list[str], current: str | None) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=[label])
    for value in names:
        family.add_metric([value], 1.0 if value == current else 0.0)
    return family


class Exposed(Collector):
    """`registry`'s metrics as scrapes see them: each sample with the owner's ``namespace``
    label (None: none added), the ``*_created`` samples only when `created_series`."""

    def __init__(
        self, registry: CollectorRegistry, namespace: str | None, created_series: bool
    ) -> None:
        self.registry = registry
        self.labels = {"namespace": namespace} if namespace is not None else {}
        self.created_series = created_series

    def describe(self) -> Iterator[Metric]:
        """Nothing to describe ahead of a scrape (registering does not collect)."""
        return iter(())

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            exposed = Metric(family.name, family.documentation, family.type, family.unit)
            exposed.samples = [
                s._replace(labels=self.labels | s.labels)
                for s in family.samples
                if self.created_series or not s.name.endswith("_created")
            ]
            yield exposed
