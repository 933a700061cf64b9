"""Owner paths with no other test: size limit, unreachable QPU API, calibration window, cancel."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from brokers.topology import CODE_HEADER
from schemas import CommandName, ErrorCode, JobState
from tests.conftest import OwnerHarness
from tests.integration.test_owner import events
from tests.support.owners import wait_running
from tests.support.qpu_api import qpu_api_simulator, sim
from tests.support.sequences import analog_sequence

pytestmark = pytest.mark.integration
SHARED_OWNER_ARGS = ("--backend", "synthetic", "--shot-rate", "200")  # `shared_owner`
SHARED_OWNER_ENV = {"QSCHED_MAX_MESSAGE_BYTES": "20000"}


@pytest.fixture
def api() -> Iterator[str]:
    with qpu_api_simulator(shot_rate_hz=500) as url:
        yield url


def test_a_job_over_the_owners_size_limit_is_rejected_message_too_large_and_dead_lettered(
    shared_owner: OwnerHarness,
) -> None:
    """Given an owner whose max_message_bytes is 20 000, a 30 kB job is answered REJECTED with
    MESSAGE_TOO_LARGE and lands in the dead queue, and the next normal job still runs."""
    client = shared_owner.client(validate_locally=False)  # the owner's own limit is under test
    big = client.submit(json.dumps({"pad": "x" * 30_000}), 10, job_class="production")
    refused = big.result(timeout=30)
    assert refused.state is JobState.REJECTED
    assert refused.error is not None and refused.error.code is ErrorCode.MESSAGE_TOO_LARGE
    assert "20000" in refused.error.message
    ch, dead_queue = shared_owner.broker.channel(), shared_owner.broker.topology.dead_queue
    dead = {}  # expired control commands (from waiting for the owner) may be dead too
    while (got := ch.basic_get(dead_queue, auto_ack=True))[0] is not None:
        dead[got[1].message_id] = got[1].headers
    assert dead[big.job_id][CODE_HEADER] == "MESSAGE_TOO_LARGE"
    ok = client.submit(analog_sequence(2), 10, job_class="production").result(timeout=30)
    assert ok.state is JobState.DONE


def test_a_qpu_api_that_keeps_answering_503_ends_the_job_backend_unavailable_retryable(
    owners: OwnerHarness, api: str, tmp_path: Path
) -> None:
    """Given the QPU API answers 503 to every try of a job's requests and a policy without
    retries, the job ends ERROR with BACKEND_UNAVAILABLE marked retryable after one run, and the
    owner runs the next job once the API is back."""
    env = {"QSCHED_OWNER__QPU_API_URL": api, "QSCHED_OWNER__QPU_API_POLL_S": "0.05"}
    policy = tmp_path / "policy.toml"
    policy.write_text("[retry]\nattempts = 1\n")
    owners.start("--backend", "qpu-api", "--policy", str(policy), env=env)
    client = owners.client()
    sim(api, "fail", count=4, code=503)  # every try of the first request (4 by default)
    failed = client.submit(analog_sequence(2), 50).result(timeout=90)
    assert failed.state is JobState.ERROR and failed.attempts == 1
    assert failed.error is not None and failed.error.code is ErrorCode.BACKEND_UNAVAILABLE
    assert failed.error.retryable is True and "503" in failed.error.message
    after = client.submit(analog_sequence(2), 50).result(timeout=60)
    assert after.state is JobState.DONE and sum(after.counts.values()) == 50


CALIBRATION_POLICY = """
calibration_valid_s = 60
shot_rate_hz = 10.0
job_overhead_s = 0.0
"""


def test_a_job_that_would_outlive_the_calibration_window_waits_and_calibration_due_is_logged(
    owners: OwnerHarness, tmp_path: Path
) -> None:
    """Given a 60 s calibration window and an estimate of 10 shots/s, a 1000-shot job (100 s) is
    held while a 100-shot job (10 s) backfills; with nothing else fitting the owner logs
    `calibration.due` once for the epoch; the held job can be canceled with `handle.cancel()`."""
    policy = tmp_path / "policy.toml"
    policy.write_text(CALIBRATION_POLICY)
    owners.start("--backend", "synthetic", "--policy", str(policy))
    client = owners.client()
    assert client.control(CommandName.CALIBRATION_START).ok
    assert client.control(CommandName.CALIBRATION_COMPLETE).ok  # epoch 1, window starts now
    assert client.control(CommandName.PAUSE).ok
    too_long = client.submit(analog_sequence(2), 1000, job_class="production")
    fits = client.submit(analog_sequence(2), 100, job_class="production")
    assert client.control(CommandName.RESUME).ok
    backfilled = fits.result(timeout=30)
    assert backfilled.state is JobState.DONE and backfilled.epoch == 1
    status = client.control(CommandName.STATUS).status
    assert status is not None and "calibration window" in status.held_reasons[too_long.job_id]
    assert not too_long.done()
    reply = too_long.cancel()
    assert reply.ok, reply.message
    canceled = too_long.result(timeout=30)
    assert canceled.state is JobState.CANCELED
    log = events(owners)
    due = [e for e in log if e.topic == "calibration.due"]
    assert [e.data["epoch"] for e in due] == [1]
    assert too_long.job_id not in [e.job_id for e in log if e.topic == "job.started"]


def test_handle_cancel_stops_a_running_job_and_keeps_its_partial_counts(
    shared_owner: OwnerHarness,
) -> None:
    client = shared_owner.client()
    handle = client.submit(analog_sequence(2), 2000, job_class="production")  # ~10 s
    wait_running(client, handle.job_id)
    reply = handle.cancel()
    assert reply.ok, reply.message
    result = handle.result(timeout=30)
    assert result.state is JobState.CANCELED
    assert result.error is not None and result.error.code is ErrorCode.CANCELED_BY_OPERATOR
    assert sum(result.counts.values()) < 2000
    status = client.control(CommandName.STATUS).status
    assert status is not None and status.running is None


def test_a_snapshot_over_its_size_limit_is_skipped_and_the_owner_and_the_next_one_run_on(
    owners: OwnerHarness,
) -> None:
    """An owner.snapshot larger than owner.snapshot_max_bytes is not written (logged once per
    try), the owner keeps running jobs, and the next owner activates from the log without it."""
    env = {"QSCHED_OWNER__SNAPSHOT_MAX_BYTES": "300", "QSCHED_OWNER__SNAPSHOT_EVERY_EVENTS": "10"}
    first = owners.start("--backend", "synthetic", env=env)
    client = owners.client(validate_locally=False)
    handles = [client.submit(analog_sequence(2), 10, job_class="development") for _ in range(4)]
    assert {h.result(timeout=60).state for h in handles} == {JobState.DONE}
    assert "owner.snapshot not written" in first.log()
    assert first.process.poll() is None  # alive
    assert not [e for e in events(owners) if e.topic == "owner.snapshot"]
    first.stop()
    owners.start("--backend", "synthetic", env=env)
    later = owners.client(validate_locally=False).submit(analog_sequence(2), 10)
    assert later.result(timeout=60).state is JobState.DONE
