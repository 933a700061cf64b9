"""The qpu-api backend over real HTTP against the QPU API simulator, alone and in the owner."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from consumers.backends.base import RunOutcome, RunRequest
from consumers.backends.qpu_api import QPUApiBackend
from consumers.errors import BackendFailure
from schemas import CommandName, JobState, QPUState
from tests.conftest import OwnerHarness
from tests.integration.test_owner import events
from tests.support.owners import wait_running
from tests.support.qpu_api import qpu_api_simulator, sim
from tests.support.sequences import analog_sequence

pytestmark = pytest.mark.integration


@pytest.fixture
def api() -> Iterator[str]:
    with qpu_api_simulator(shot_rate_hz=500) as url:
        yield url


def _status_on_qpu(backend: QPUApiBackend, uid: int) -> str | None:
    try:
        return backend._call("GET", f"/jobs/{uid}").get("status")
    except BackendFailure:
        return None  # not submitted yet


class Reports:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.outcome: RunOutcome | None = None
        self.operational_changes: list[bool] = []
        self.changed = threading.Event()

    def progress(self, job_id: str, shots_done: int, counts: dict[str, int]) -> None:
        pass

    def finished(self, outcome: RunOutcome) -> None:
        self.outcome = outcome
        self.done.set()

    def operational(self, up: bool, reason: str) -> None:
        self.operational_changes.append(up)
        self.changed.set()

    def note(self, job_id: str, message: str) -> None:
        pass


def test_5xx_bursts_are_retried_and_4xx_are_final(api: str) -> None:
    backend = QPUApiBackend(api, poll_s=0.05, backoff_s=0.01)
    sim(api, "fail", count=3, code=503)
    assert backend.fetch_operational() is True
    with pytest.raises(BackendFailure) as info:
        backend._call("GET", "/jobs/999999")
    assert info.value.retryable is False and "404" in str(info.value)
    sim(api, "fail", count=20, code=502)
    with pytest.raises(BackendFailure) as exhausted:
        QPUApiBackend(api, max_attempts=3, backoff_s=0.01)._call("GET", "/system/operational")
    assert exhausted.value.retryable is True


def test_a_hanging_request_times_out_and_is_retried(api: str) -> None:
    """Given a request that would hang for 30 s, a client with a 0.5 s timeout gives up on it and
    gets its answer from the retry; a client without a timeout would take the whole 30 s."""
    backend = QPUApiBackend(api, poll_s=0.05, timeout_s=0.5, backoff_s=0.01)
    sim(api, "hang", count=1, seconds=30)
    started = time.monotonic()
    assert backend.fetch_operational() is True
    elapsed_s = time.monotonic() - started
    assert 0.5 <= elapsed_s < 10.0, f"answered after {elapsed_s:.1f} s"
    assert (
        sim(api, "hang", count=0)["data"]["queued_hangs"] == 0
    )  # the hang was consumed by attempt 1


def test_device_specs_come_from_the_api(api: str) -> None:
    device = QPUApiBackend(api).device()
    assert device.name == "AnalogDevice" and device.max_runs == 2000


def test_a_job_waits_while_the_qpu_is_down(api: str) -> None:
    backend = QPUApiBackend(api, poll_s=0.05)
    sim(api, "operational", status="DOWN")
    reports = Reports()
    backend.start(RunRequest("j1", analog_sequence(2), 100), reports)
    assert reports.changed.wait(10)
    assert reports.operational_changes == [False]
    assert not reports.done.is_set()
    sim(api, "operational", status="UP")
    assert reports.done.wait(20)
    assert reports.operational_changes == [False, True]
    assert reports.outcome is not None and sum(reports.outcome.counts.values()) == 100


def test_the_owner_runs_jobs_through_the_qpu_api(owners: OwnerHarness, api: str) -> None:
    env = {"QSCHED_OWNER__QPU_API_URL": api, "QSCHED_OWNER__QPU_API_POLL_S": "0.05"}
    owners.start("--backend", "qpu-api", env=env)
    client = owners.client()
    result = client.submit(analog_sequence(3), 250, job_class="production").result(timeout=30)
    assert result.state is JobState.DONE and sum(result.counts.values()) == 250
    assert result.backend == "qpu-api"
    sim(api, "fail", count=4, code=500)
    assert client.submit(analog_sequence(3), 50).result(timeout=30).state is JobState.DONE
    sim(api, "operational", status="DOWN")
    waiting = client.submit(analog_sequence(3), 50)
    deadline = time.monotonic() + 30
    while client.control(CommandName.STATUS).status.qpu_state is not QPUState.DOWN:
        assert time.monotonic() < deadline, "owner never showed the QPU DOWN"
        client.poll(0.1)
    sim(api, "operational", status="UP")
    assert waiting.result(timeout=30).state is JobState.DONE
    topics = [e.topic for e in events(owners)]
    assert "qpu.down" in topics and "qpu.up" in topics


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_a_refused_cancel_keeps_the_job_and_tells_the_operator(owners: OwnerHarness) -> None:
    with qpu_api_simulator(shot_rate_hz=100) as api:
        env = {"QSCHED_OWNER__QPU_API_URL": api, "QSCHED_OWNER__QPU_API_POLL_S": "0.05"}
        owners.start("--backend", "qpu-api", env=env)
        client = owners.client()
        sim(api, "refuse_cancel", refuse=True)
        job = client.submit(analog_sequence(2), 300)  # ~3 s on the simulated QPU
        wait_running(client, job.job_id)
        backend = QPUApiBackend(api)
        deadline = time.monotonic() + 30
        while _status_on_qpu(backend, 1) != "RUNNING":  # on the QPU itself, not only in qsched
            assert time.monotonic() < deadline, "job 1 never RUNNING on the simulated QPU"
            time.sleep(0.05)  # the API has no push: polling it is the only way to look
        assert client.control(CommandName.CANCEL, job_id=job.job_id).ok
        result = job.result(timeout=30)
        assert result.state is JobState.DONE and sum(result.counts.values()) == 300
        notes = [e for e in events(owners) if e.topic == "job.note" and e.job_id == job.job_id]
        assert notes and "cancel refused" in (notes[0].reason or "")
