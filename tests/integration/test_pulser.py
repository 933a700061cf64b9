"""Pulser's own QPUBackend running through qsched via QSchedConnection."""

from __future__ import annotations

import pulser
import pytest
from pulser import Pulse, Sequence
from pulser.backend.remote import BatchStatus, JobStatus
from pulser.devices import AnalogDevice

from producers.pulser import QSchedConnection
from tests.conftest import OwnerHarness
from tests.integration.test_owner import events
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
SHARED_OWNER_ARGS = ("--backend", "emulator", "--shot-rate", "400")  # `shared_owner`


def _sequence(parametrized: bool = False) -> Sequence:
    layout = next(iter(AnalogDevice.calibrated_register_layouts.values()))
    seq = Sequence(layout.define_register(0, 1, 2, qubit_ids=["a", "b", "c"]), AnalogDevice)
    seq.declare_channel("rydberg", "rydberg_global")
    amplitude = seq.declare_variable("amplitude") if parametrized else 3.0
    seq.add(Pulse.ConstantPulse(400, amplitude, 0.0, 0.0), "rydberg")
    return seq


def test_qpubackend_run_wait_true_gives_counts_summing_to_runs(shared_owner: OwnerHarness) -> None:
    connection = QSchedConnection(shared_owner.client(), job_class="development")
    devices = connection.fetch_available_devices()
    assert isinstance(devices["AnalogDevice"], pulser.devices.Device)
    results = pulser.QPUBackend(_sequence(), connection).run(
        [{"runs": 100}, {"runs": 40}], wait=True
    )
    assert [sum(r.bitstring_counts.values()) for r in results.results] == [100, 40]
    assert results.results[0].atom_order == ("a", "b", "c")
    assert results.get_batch_status() is BatchStatus.DONE


def test_qpubackend_run_wait_false_updates_as_jobs_finish(shared_owner: OwnerHarness) -> None:
    connection = QSchedConnection(shared_owner.client())
    remote = pulser.QPUBackend(_sequence(), connection).run(
        [{"runs": 400}, {"runs": 400}], wait=False
    )
    assert remote.get_batch_status() in (BatchStatus.PENDING, BatchStatus.RUNNING)
    first = remote.job_ids[0]
    wait_until(
        lambda: first in remote.get_available_results(),
        f"first job {first} of the batch available",
        timeout_s=60,
        step=lambda: connection.client.poll(0.1),
    )
    statuses = {s for s, _ in connection._query_job_progress(remote.batch_id).values()}
    assert JobStatus.DONE in statuses
    wait_until(
        lambda: remote.get_batch_status() is BatchStatus.DONE,
        "the batch DONE",
        timeout_s=60,
        step=lambda: connection.client.poll(0.1),
    )
    assert all(sum(r.bitstring_counts.values()) == 400 for r in remote.results)


def test_an_open_batch_is_one_session(shared_owner: OwnerHarness) -> None:
    connection = QSchedConnection(shared_owner.client())
    backend = pulser.QPUBackend(_sequence(parametrized=True), connection)
    with backend.open_batch():
        first = backend.run([{"runs": 50, "variables": {"amplitude": 1.0}}], wait=True)
        second = backend.run([{"runs": 60, "variables": {"amplitude": 5.0}}], wait=True)
        assert first.batch_id == second.batch_id
        assert connection._get_batch_status(first.batch_id) is BatchStatus.RUNNING  # still open
    assert connection._get_batch_status(first.batch_id) is BatchStatus.DONE
    assert [sum(r.bitstring_counts.values()) for r in (*first.results, *second.results)] == [50, 60]
    mine = {*first.job_ids, *second.job_ids}
    sessions = {
        e.data["job"].get("session_id")
        for e in events(shared_owner)
        if e.topic == "job.accepted" and e.job_id in mine
    }
    assert len(mine) == 2
    assert sessions == {first.batch_id}
