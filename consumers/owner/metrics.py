"""Prometheus metrics of the owner, kept off the dispatch path.

Theory of operation. The owner's loop owns the state; the HTTP server that Prometheus scrapes runs
in a thread of its own. The two never share a mutable object:

- while the shell applies an event, `seen` only appends a small tuple to a list (no metric work);
- after each loop iteration (once the iteration's jobs were acked and its run started),
  `after_iteration` turns those tuples into counter increments and histogram observations
  (the instruments of `consumers.owner.metrics_instruments`), and at most every `refresh_s`
  builds a frozen `Snapshot` of the state (`consumers.owner.metrics_snapshot`: waiting jobs per
  class and per account from the order index's cohorts, QPU state, mode, epoch, calibration time,
  which emulator lanes are busy, each budget's seconds, spent and left this period);
- a scrape reads the latest snapshot (one reference, replaced whole) through
  `consumers.owner.metrics_scrape.SnapshotCollector` and derives the time-dependent values
  (calibration age, busy seconds of the current run) at scrape time.

Emulator lanes are not the QPU: a run that starts on a lane (its ``job.started`` names the lane)
counts in `qsched_lane_runs` and the lane's busy gauge, and its wait in the wait histogram, but
never in the QPU's busy seconds or utilisation.

A standby owner serves the endpoint too: `qsched_owner_active` is 0 and no state gauges are
reported, so a sum over owners counts each job once. Counters and histograms count what this
process saw since it started (Prometheus' `rate`/`increase` handle restarts and failovers).
Every series carries the owner's ``namespace`` (no per-process label: an owner restart adds no
series), and the ``*_created`` series are served only with ``owner.metrics_created_series``
(`consumers.owner.metrics_scrape.Exposed`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime

from prometheus_client import CollectorRegistry, start_http_server

from consumers.core.state import OwnerState
from consumers.errors import MetricsUnavailable
from consumers.owner.metrics_instruments import Instruments
from consumers.owner.metrics_scrape import (
    UTILISATION_WINDOW_S,
    Exposed,
    Snapshot,
    SnapshotCollector,
    since,
)
from consumers.owner.metrics_snapshot import build_snapshot, waiting_counts
from schemas.envelope import Event
from schemas.events import Topic
from schemas.policy import Policy
from schemas.wire import utc_now

log = logging.getLogger(__name__)

RUN_ENDS = {Topic.JOB_PREEMPTED, Topic.JOB_REQUEUED}


class OwnerMetrics:
    """The owner's metrics, fed by the owner's loop and read by scrapes.

    Args:
        is_active: whether this owner holds the QPU lease now.
        policy: the classes and lanes whose series exist from the start, at zero.
        namespace: the ``namespace`` label of every series (None: no such label).
        refresh_s: how often the loop rebuilds the snapshot scrapes read.
        calibrated_at: the backend's calibration time, for the calibration gauges while no
            operator calibration is in the log (`Backend.calibrated_at`).
        created_series: serve the ``*_created`` series too.
    """

    def __init__(
        self,
        is_active: Callable[[], bool],
        policy: Policy | None = None,
        *,
        namespace: str | None = None,
        refresh_s: float = 1.0,
        calibrated_at: Callable[[], datetime | None] | None = None,
        created_series: bool = False,
    ) -> None:
        self.inner = CollectorRegistry()
        self.registry = CollectorRegistry()  # what is served: `inner`, relabelled and filtered
        self.registry.register(Exposed(self.inner, namespace, created_series))
        self.refresh_s = refresh_s
        self._is_active = is_active
        self._backend_calibrated_at = calibrated_at or (lambda: None)
        self.instruments = Instruments(self.inner)
        self._pending: list[tuple[Event, str | None, datetime | None, str | None]] = []
        self._gaps: list[float] = []
        self._intakes: list[tuple[int, float]] = []
        self._run: tuple[str, datetime] | None = None
        self._busy_closed_s = 0.0
        self._samples: deque[tuple[float, float]] = deque()
        self._next_refresh = 0.0
        self._lock = threading.Lock()
        self._busy_reported = 0.0
        self._snapshot = Snapshot()
        self._accounts: set[str] = {""}
        self.inner.register(SnapshotCollector(self))  # after the instruments: scrape order
        if policy is not None:
            self.instruments.known(policy)

    # ---- called by the owner's loop -----------------------------------------------------------

    def seen(self, event: Event, state: OwnerState) -> None:
        """Note an applied event (O(1); metric work waits for `after_iteration`)."""
        job_class: str | None = event.job_class
        queued_at: datetime | None = None
        lane: str | None = None
        topic = event.topic
        if topic == Topic.JOB_STARTED:
            lane = event.data.get("lane") or None
            run = state.lanes.get(lane) if lane else state.running
            if run is not None:  # the wait ends at the job's first start, not at a rerun
                job_class = run.job.job_class
                queued_at = run.job.queued_at if not run.job.runs else None
                if lane is None:
                    self._session_gap(run.job.session_id, event.at, state)
        elif event.result is not None:
            job_class = event.result.job_class
        elif event.job_id and job_class is None:
            waiting = state.waiting.get(event.job_id)
            job_class = waiting.job_class if waiting is not None else None
        self._pending.append((event, job_class, queued_at, lane))

    def _session_gap(self, session_id: str | None, at: datetime, state: OwnerState) -> None:
        """A session's job started on the QPU: the time since the session's last run ended."""
        session = state.sessions.get(session_id or "")
        if session is not None and session.last_run_ended_at is not None:
            self._gaps.append(max((at - session.last_run_ended_at).total_seconds(), 0.0))

    def intake_done(self, jobs: int, seconds: float) -> None:
        """Note that `jobs` deliveries were taken and acked in `seconds`."""
        if jobs:
            self._intakes.append((jobs, seconds))

    def after_iteration(self, state: OwnerState, policy: Policy) -> None:
        """Turn what was seen into metrics; refresh the snapshot when due."""
        pending, self._pending = self._pending, []
        now = utc_now()
        for event, job_class, queued_at, lane in pending:
            self._count(event, job_class, queued_at, now, lane)
        gaps, self._gaps = self._gaps, []
        for gap_s in gaps:
            self.instruments.iteration_gap.observe(gap_s)
        intakes, self._intakes = self._intakes, []
        for jobs, seconds in intakes:
            for _ in range(jobs):
                self.instruments.intake.observe(seconds)
        mono = time.monotonic()
        if mono >= self._next_refresh:
            self._next_refresh = mono + self.refresh_s
            self.refresh(state, policy, now, mono)

    def _count(
        self,
        event: Event,
        job_class: str | None,
        queued_at: datetime | None,
        now: datetime,
        lane: str | None,
    ) -> None:
        m = self.instruments
        topic = event.topic
        label = job_class or "unknown"
        if topic == Topic.JOB_ACCEPTED:
            m.accepted.labels(label).inc()
        elif topic == Topic.JOB_STARTED:
            if queued_at is not None:
                m.wait.labels(label).observe(max((event.at - queued_at).total_seconds(), 0.0))
            m.dispatch.observe(max((now - event.at).total_seconds(), 0.0))
            if lane is not None:
                m.lane_runs.labels(lane, label).inc()
            else:
                self._end_run(event.at)
                self._run = (event.job_id or "", event.at)
        elif topic == Topic.JOB_PREEMPTED:
            m.preemptions.labels(label).inc()
        elif topic == Topic.SESSION_OPENED:
            explicit = event.data.get("explicit", True)
            m.sessions_opened.labels("explicit" if explicit else "implicit").inc()
        elif topic == Topic.SESSION_ENDED:
            m.sessions_ended.labels(str(event.data.get("reason") or "unknown")).inc()
        if event.result is not None:
            m.finished.labels(label, event.result.state.value).inc()
        ends_run = topic in RUN_ENDS or event.result is not None
        if ends_run and self._run is not None and event.job_id == self._run[0]:
            self._end_run(event.at)

    def _end_run(self, at: datetime) -> None:
        if self._run is not None:
            self._busy_closed_s += max((at - self._run[1]).total_seconds(), 0.0)
            self._run = None

    def refresh(self, state: OwnerState, policy: Policy, now: datetime, mono: float) -> None:
        """Build the snapshot scrapes read (called from the owner's loop)."""
        by_class, by_account = waiting_counts(state, policy)
        self._accounts |= by_account.keys()  # an account that emptied reads 0, not "no data"
        by_account = {account: by_account.get(account, 0) for account in self._accounts}
        running_since = self._run[1] if self._run is not None and state.running else None
        busy_s = self._busy_closed_s + since(running_since, now)
        self._samples.append((mono, busy_s))
        while len(self._samples) > 2 and mono - self._samples[1][0] >= UTILISATION_WINDOW_S:
            self._samples.popleft()
        first_mono, first_busy = self._samples[0]
        span_s = mono - first_mono
        utilisation = (busy_s - first_busy) / span_s if span_s > 0 else 0.0
        snapshot = build_snapshot(
            state,
            policy,
            now,
            waiting_by_class=by_class,
            waiting_by_account=by_account,
            running_since=running_since,
            busy_closed_s=self._busy_closed_s,
            utilisation=utilisation,
            backend_calibrated_at=self._backend_calibrated_at(),
        )
        with self._lock:
            self._snapshot = snapshot

    def standby(self) -> None:
        """Forget the active owner's state (the lease was lost; scrapes report standby)."""
        self._end_run(utc_now())
        self._pending.clear()
        self._intakes.clear()
        self._samples.clear()
        self._next_refresh = 0.0
        with self._lock:
            self._snapshot = Snapshot(busy_closed_s=self._busy_closed_s)

    # ---- read by scrapes ----------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The latest snapshot (thread-safe)."""
        with self._lock:
            return self._snapshot

    def busy_s(self, snap: Snapshot, now: datetime) -> float:
        """QPU busy seconds at `now`, never less than a previous scrape saw (the snapshot's
        running job may have ended since it was taken)."""
        with self._lock:
            self._busy_reported = max(
                self._busy_reported, snap.busy_closed_s + since(snap.running_since, now)
            )
            return self._busy_reported

    def active(self) -> bool:
        """Whether this owner holds the QPU lease now."""
        return self._is_active()


def serve_metrics(metrics: OwnerMetrics, bind: str, port: int) -> int:
    """Serve `/metrics` on `bind`:`port` in a daemon thread; the port it listens on.

    Raises:
        MetricsUnavailable: the address cannot be listened on (in use, not local, refused).
    """
    try:
        server, _thread = start_http_server(port, addr=bind, registry=metrics.registry)
    except OSError as exc:
        raise MetricsUnavailable(
            f"cannot serve metrics on {bind}:{port}: {exc.strerror or exc}"
        ) from exc
    bound = int(server.server_port)
    log.info("metrics on http://%s:%d/metrics", bind, bound)
    return bound
