"""Calibration-aware dispatch, Slurm allocations and session grace through the real owner."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from pulser.devices import AnalogDevice

from schemas import CommandName, ErrorCode, JobState, QPUState
from tests.conftest import OwnerHarness
from tests.integration.test_owner import events
from tests.support.owners import register_allocation, wait_running
from tests.support.sequences import analog_sequence
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def test_calibration_changes_the_epoch_and_new_specs_are_enforced_at_dispatch(
    owners: OwnerHarness,
) -> None:
    owners.start("--backend", "synthetic")
    client = owners.client()
    before = client.submit(analog_sequence(2), 150).result(timeout=30)
    assert before.epoch == 0
    assert client.control(CommandName.CALIBRATION_START).ok
    assert client.control(CommandName.STATUS).status.qpu_state is QPUState.CALIBRATING
    too_many_later = client.submit(analog_sequence(2), 150, job_class="production")
    fits = client.submit(analog_sequence(2), 50, job_class="production")
    calibration_job = client.submit(analog_sequence(2), 20, job_class="calibration")
    assert calibration_job.result(timeout=30).state is JobState.DONE  # calibration jobs run
    status = client.control(CommandName.STATUS).status
    assert status.held_reasons[fits.job_id] == "held: the QPU is being calibrated"
    specs = dataclasses.replace(AnalogDevice, max_runs=100).to_abstract_repr()
    done = client.control(CommandName.CALIBRATION_COMPLETE, specs=specs)
    assert done.ok, done.message
    rejected = too_many_later.result(timeout=30)
    assert rejected.state is JobState.REJECTED
    assert rejected.error.code is ErrorCode.TOO_MANY_SHOTS
    assert "after calibration epoch 1" in rejected.error.message and "100" in rejected.error.message
    after = fits.result(timeout=30)
    assert after.state is JobState.DONE and after.epoch == 1
    assert owners.client().fetch_device().max_runs == 100  # a client caches specs for 30 s
    assert [e.data["epoch"] for e in events(owners) if e.topic == "calibration.complete"] == [1]


def test_calibration_start_now_preempts_the_running_job(owners: OwnerHarness) -> None:
    owners.start("--backend", "synthetic", "--shot-rate", "200")
    client = owners.client()
    job = client.submit(analog_sequence(2), 1000, job_class="production")
    wait_running(client, job.job_id)
    assert client.control(CommandName.CALIBRATION_START, force=True).ok
    status = wait_until(
        lambda: (
            (s := client.control(CommandName.STATUS).status).qpu_state is QPUState.CALIBRATING and s
        ),
        "QPU CALIBRATING after calibration-start --now",
        step=lambda: client.poll(0.1),
    )
    assert status.running is None and status.queue_depth["production"] == 1
    assert client.control(CommandName.CALIBRATION_COMPLETE).ok
    result = job.result(timeout=60)
    assert result.state is JobState.DONE and result.preemptions == 1 and result.epoch == 1
    assert sum(result.counts.values()) == 1000


def test_allocation_ended_cancels_its_queued_and_running_jobs(
    owners: OwnerHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    owners.start("--backend", "synthetic", "--shot-rate", "100")
    monkeypatch.setenv("SLURM_JOB_ID", "9001")
    client = owners.client()
    register_allocation(client, "9001")
    register_allocation(client, "9002")
    running = client.submit(analog_sequence(2), 2000)
    queued = client.submit(analog_sequence(2), 10)
    wait_running(client, running.job_id)
    monkeypatch.setenv("SLURM_JOB_ID", "9002")
    other = client.submit(analog_sequence(2), 10)
    reply = client.control(CommandName.ALLOCATION_ENDED, allocation="9001")
    assert reply.ok and "1 queued job(s) canceled" in reply.message
    for handle in (running, queued):
        result = handle.result(timeout=30)
        assert result.state is JobState.CANCELED and result.error.code is ErrorCode.ALLOCATION_ENDED
    assert other.result(timeout=30).state is JobState.DONE
    monkeypatch.setenv("SLURM_JOB_ID", "9001")
    late = client.submit(analog_sequence(2), 10).result(timeout=30)
    assert late.state is JobState.CANCELED and late.error.code is ErrorCode.ALLOCATION_ENDED
    started = [e.job_id for e in events(owners) if e.topic == "job.started"]
    assert late.job_id not in started


def _order(owners: OwnerHarness, tmp_path: Path, grace_s: float) -> list[str]:
    policy = tmp_path / f"policy-{grace_s}.toml"
    policy.write_text(f"session_grace_s = {grace_s}\n")
    owners.start("--backend", "synthetic", "--shot-rate", "100", "--policy", str(policy))
    client = owners.client()
    first = client.submit(analog_sequence(2), 100, session_id="loop")  # ~1 s
    wait_running(client, first.job_id)
    others = [client.submit(analog_sequence(2), 100) for _ in range(2)]
    first.result(timeout=30)
    wait_running(client, others[0].job_id)
    second = client.submit(analog_sequence(2), 100, session_id="loop")  # the loop's next iteration
    results = [h.result(timeout=60) for h in (first, *others, second)]
    names = {
        first.job_id: "loop-1",
        others[0].job_id: "x1",
        others[1].job_id: "x2",
        second.job_id: "loop-2",
    }
    owners.close()
    owners.owners.clear()
    return [names[r.job_id] for r in sorted(results, key=lambda r: r.timings.started_at)]


def test_a_sessions_next_job_jumps_the_queue_within_its_grace_window(
    owners: OwnerHarness, tmp_path: Path
) -> None:
    assert _order(owners, tmp_path, grace_s=30) == ["loop-1", "x1", "loop-2", "x2"]


def test_without_grace_the_sessions_next_job_queues_behind(
    owners: OwnerHarness, tmp_path: Path
) -> None:
    assert _order(owners, tmp_path, grace_s=0) == ["loop-1", "x1", "x2", "loop-2"]


def test_a_job_asking_for_a_later_epoch_waits_for_that_calibration(
    owners: OwnerHarness, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('mode = "development"\nmode_message = "commissioning"\n')
    owners.start("--backend", "synthetic", "--policy", str(policy))
    client = owners.client()
    status = client.control(CommandName.STATUS).status
    assert status.mode.value == "development" and status.mode_message == "commissioning"
    waiting = client.submit(analog_sequence(2), 10, min_epoch=1)
    assert (
        "needs calibration epoch 1"
        in client.control(CommandName.STATUS).status.held_reasons[waiting.job_id]
    )
    assert client.control(CommandName.CALIBRATION_START).ok
    assert client.control(CommandName.CALIBRATION_COMPLETE).ok
    result = waiting.result(timeout=30)
    assert result.state is JobState.DONE and result.epoch == 1
