"""The owner's counters and histograms: their names, help texts, labels and buckets, in one place.

`consumers.owner.metrics.OwnerMetrics` moves them as events are folded; this module only
defines them. They are created in the order a scrape lists them. Every labelled series exists
from the owner's start for every label value the policy names (`Instruments.known`), at zero:
a panel shows 0, not "No data", before the first preemption or lane run.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from consumers.core.sessions import ENDED_REASONS as SESSION_END_REASONS
from schemas.enums import JobState
from schemas.policy import Policy

WAIT_BUCKETS_S = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 86400)
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
GAP_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
SESSION_KINDS = ("explicit", "implicit")


class Instruments:
    """The owner's counters and histograms, registered in `registry`.

    Args:
        registry: where they are registered (the owner's inner registry).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.wait = Histogram(
            "qsched_job_wait_seconds",
            "Time from a job's acceptance to its first start, per class",
            ["job_class"],
            buckets=WAIT_BUCKETS_S,
            registry=r,
        )
        self.intake = Histogram(
            "qsched_intake_latency_seconds",
            "Owner time from taking a job delivery to acking it (validated, accepted, confirmed)",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.dispatch = Histogram(
            "qsched_dispatch_latency_seconds",
            "Owner time from deciding to start a run to the backend having started it",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.accepted = Counter(
            "qsched_jobs_accepted", "Jobs accepted into the backlog", ["job_class"], registry=r
        )
        self.finished = Counter(
            "qsched_jobs_finished",
            "Jobs that ended, by class and final state",
            ["job_class", "state"],
            registry=r,
        )
        self.lane_runs = Counter(
            "qsched_lane_runs",
            "Runs started on an emulator lane, by lane and job class",
            ["lane", "job_class"],
            registry=r,
        )
        self.preemptions = Counter(
            "qsched_preemptions",
            "Runs preempted, by the class of the preempted job",
            ["job_class"],
            registry=r,
        )
        self.sessions_opened = Counter(
            "qsched_sessions_opened",
            "Sessions opened, by kind (explicit: QRMI acquire, SDK, Pulser open batch; implicit)",
            ["kind"],
            registry=r,
        )
        self.sessions_ended = Counter(
            "qsched_sessions_ended",
            "Sessions ended, by reason (closed, canceled, max_time, idle, allocation_ended)",
            ["reason"],
            registry=r,
        )
        self.iteration_gap = Histogram(
            "qsched_session_iteration_gap_seconds",
            "A session's QPU run ended -> the session's next run started (its iteration gap)",
            buckets=GAP_BUCKETS_S,
            registry=r,
        )

    def known(self, policy: Policy) -> None:
        """Give every label value the policy names a series at zero (classes, final states,
        lanes): a counter that has not moved yet reads 0, not "no data"."""
        finals = [s.value for s in JobState if s.is_final]
        for job_class in policy.class_names:
            self.accepted.labels(job_class)
            self.preemptions.labels(job_class)
            self.wait.labels(job_class)
            for state in finals:
                self.finished.labels(job_class, state)
            for lane in policy.lanes.names:
                self.lane_runs.labels(lane, job_class)
        for kind in SESSION_KINDS:
            self.sessions_opened.labels(kind)
        for reason in SESSION_END_REASONS:
            self.sessions_ended.labels(reason)
