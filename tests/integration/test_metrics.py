"""Prometheus metrics scraped from real owner processes while jobs flow through a real broker."""

from __future__ import annotations

import re
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from schemas import CommandName, JobState
from schemas.jobs import SlurmContext
from tests.conftest import OwnerHarness
from tests.support.owners import OwnerProcess, register_allocation, wait_for_log, wait_running
from tests.support.sequences import analog_sequence
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

METRICS_ENV = {"QSCHED_OWNER__METRICS_PORT": "0"}  # any free port, named in the owner's log
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def metrics_url(owner: OwnerProcess) -> str:
    """The /metrics URL an owner logged when it started serving."""
    wait_for_log(owner, "metrics on http://", timeout_s=30)
    found = re.search(r"metrics on (http://\S+/metrics)", owner.log())
    assert found is not None
    return found.group(1)


def scrape(url: str) -> Samples:
    """Every sample of one scrape, keyed by name and labels (less the owner's ``namespace``
    label, which every sample carries, one value per owner)."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    assert len({s.labels.get("namespace") for s in samples}) == 1, "one namespace label, always"
    return {
        (s.name, frozenset((k, v) for k, v in s.labels.items() if k != "namespace")): s.value
        for s in samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """One sample's value (None: not reported)."""
    return samples.get((name, frozenset(labels.items())))


def test_an_active_owner_reports_the_backlog_runs_and_ends_and_a_standby_reports_standby(
    owners: OwnerHarness,
) -> None:
    """Given an owner serving /metrics, when jobs queue behind a pause, run (one preempted) and
    end, the scrapes show the waiting counts per class and account, the QPU state, the calibration
    epoch, the wait and latency histograms and the final states; a second owner reports standby."""
    active = owners.start("--backend", "synthetic", "--shot-rate", "200", env=METRICS_ENV)
    url = metrics_url(active)
    client = owners.client()
    first = scrape(url)
    assert value(first, "qsched_owner_active") == 1.0
    assert value(first, "qsched_qpu_state", state="IDLE") == 1.0
    assert value(first, "qsched_waiting_jobs", job_class="production") == 0.0
    assert value(first, "qsched_calibration_epoch") == 0.0
    # present from the start: the backend's calibration, every counter at zero
    assert 0.0 <= (value(first, "qsched_calibration_age_seconds") or -1.0) < 600.0
    assert value(first, "qsched_preemptions_total", job_class="development") == 0.0
    assert value(first, "qsched_jobs_finished_total", job_class="production", state="ERROR") == 0
    assert not [name for name, _ in first if name.endswith("_created")]

    assert client.control(CommandName.PAUSE).ok
    register_allocation(client, "77", "physics")
    held = [
        client.submit_request(
            client.build_job(analog_sequence(2), 20, job_class="production").model_copy(
                update={"slurm": SlurmContext(job_id="77", account="physics")}
            )
        )
        for _ in range(2)
    ]
    held.append(client.submit(analog_sequence(2), 20, job_class="development"))

    def queued() -> Samples | None:
        samples = scrape(url)
        return samples if value(samples, "qsched_waiting_jobs", job_class="production") else None

    paused = wait_until(queued, "waiting production jobs in a scrape", 30, lambda: client.poll(0.2))
    assert value(paused, "qsched_waiting_jobs", job_class="production") == 2.0
    assert value(paused, "qsched_waiting_jobs", job_class="development") == 1.0
    assert value(paused, "qsched_waiting_jobs_by_account", account="physics") == 2.0
    assert value(paused, "qsched_waiting_jobs_by_account", account="") == 1.0
    assert value(paused, "qsched_qpu_state", state="PAUSED") == 1.0
    assert value(paused, "qsched_qpu_state", state="IDLE") == 0.0

    assert client.control(CommandName.RESUME).ok
    assert all(h.result(timeout=60).state is JobState.DONE for h in held)
    long_dev = client.submit(analog_sequence(2), 2000, job_class="development")  # ~10 s
    wait_running(client, long_dev.job_id)
    prod = client.submit(analog_sequence(2), 20, job_class="production")
    assert prod.result(timeout=60).state is JobState.DONE
    wait_running(client, long_dev.job_id)  # its second run
    assert long_dev.cancel(timeout=30).ok
    assert long_dev.result(timeout=60).state is JobState.CANCELED

    def ended() -> Samples | None:
        samples = scrape(url)
        done = value(samples, "qsched_jobs_finished_total", job_class="production", state="DONE")
        idle = value(samples, "qsched_waiting_jobs", job_class="production") == 0.0
        return samples if done == 3.0 and idle else None  # gauges lag counters by <= 1 s

    after = wait_until(ended, "3 production jobs DONE, none waiting", 30, lambda: client.poll(0.2))
    assert value(after, "qsched_jobs_finished_total", job_class="development", state="DONE") == 1
    assert value(after, "qsched_jobs_finished_total", job_class="development", state="CANCELED")
    assert value(after, "qsched_preemptions_total", job_class="development") == 1.0
    assert value(after, "qsched_jobs_accepted_total", job_class="production") == 3.0
    # a wait per job, to its first start (the preempted job's rerun is no second wait); every
    # run (6: the preempted one twice) was dispatched
    assert value(after, "qsched_job_wait_seconds_count", job_class="production") == 3.0
    assert value(after, "qsched_job_wait_seconds_count", job_class="development") == 2.0
    assert value(after, "qsched_dispatch_latency_seconds_count") == 6.0
    assert (value(after, "qsched_intake_latency_seconds_count") or 0) >= 5.0
    assert (value(after, "qsched_qpu_busy_seconds_total") or 0) > 0.0
    assert 0.0 < (value(after, "qsched_qpu_utilisation_ratio") or 0) <= 1.0

    assert client.control(CommandName.CALIBRATION_START).ok
    assert client.control(CommandName.CALIBRATION_COMPLETE).ok
    calibrated = wait_until(
        lambda: (s := scrape(url)) and value(s, "qsched_calibration_epoch") == 1.0 and s,
        "calibration epoch 1 in a scrape",
        30,
        lambda: client.poll(0.2),
    )
    assert 0.0 <= (value(calibrated, "qsched_calibration_age_seconds") or -1) < 60.0

    standby = owners.start("--backend", "synthetic", env=METRICS_ENV, wait=False)
    wait_for_log(standby, "standby: another owner holds", timeout_s=60)
    standby_samples = scrape(metrics_url(standby))
    assert value(standby_samples, "qsched_owner_active") == 0
    assert not [k for k in standby_samples if k[0] == "qsched_waiting_jobs"]
