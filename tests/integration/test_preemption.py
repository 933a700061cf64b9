"""Preemption through the real owner: the preempted job keeps its measured shots."""

from __future__ import annotations

import pytest

from schemas import CommandName, JobState
from schemas.jobs import JobProgress
from tests.conftest import OwnerHarness
from tests.integration.test_owner import events
from tests.support.owners import wait_running
from tests.support.sequences import analog_sequence
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
# `shared_owner`: the emulator at 400 shots/s; a job is preempted at most once
SHARED_OWNER_ARGS = ("--backend", "emulator", "--shot-rate", "400")
SHARED_OWNER_POLICY = "max_preemptions = 1\n"


def _wait_progress(client, handle, shots_done: int = 1) -> JobProgress:  # type: ignore[no-untyped-def]
    return wait_until(
        lambda: (
            handle.last_progress is not None
            and handle.last_progress.shots_done >= shots_done
            and handle.last_progress
        ),
        f"{handle.job_id} reporting {shots_done} shots done",
        timeout_s=60,
        step=lambda: client.poll(0.1),
    )


def test_a_development_job_is_preempted_by_production_and_then_runs_only_its_remaining_shots(
    shared_owner: OwnerHarness,
) -> None:
    """Given a development job preempted by a production one after k of its 1200 shots, its second
    run continues from k (progress never falls below k and keeps the measured bitstrings) and the
    counts sum to 1200: neither re-run from zero nor k shots counted twice."""
    client = shared_owner.client()
    dev = client.submit(analog_sequence(3), 1200, job_class="development")  # ~3 s
    wait_running(client, dev.job_id)
    _wait_progress(client, dev, shots_done=300)
    prod = client.submit(analog_sequence(3), 100, job_class="production")
    prod_result = prod.result(timeout=60)
    dev_result = dev.result(timeout=60)
    assert prod_result.state is JobState.DONE
    assert dev_result.state is JobState.DONE
    assert sum(dev_result.counts.values()) == 1200
    assert dev_result.preemptions == 1 and dev_result.attempts == 2
    assert prod_result.timings.ended_at < dev_result.timings.ended_at
    log = [e for e in events(shared_owner) if e.job_id == dev.job_id or e.job_id == prod.job_id]
    preempted = [e for e in log if e.topic == "job.preempted"]
    assert len(preempted) == 1 and preempted[0].job_id == dev.job_id
    k = preempted[0].data["shots_done"]
    assert 300 <= k < 1200
    assert prod.job_id in (preempted[0].reason or "")
    at = log.index(preempted[0])
    progress = [
        (i, e.data)
        for i, e in enumerate(log)
        if e.topic == "job.progress" and e.job_id == dev.job_id
    ]
    before = [p for i, p in progress if i < at and p.get("counts")]
    after = [p for i, p in progress if i > at and p.get("counts")]
    assert before and after, "progress events on both sides of the preemption"
    kept = before[-1]["counts"]
    for later in after:  # the second run adds to what was measured, it does not start over
        assert later["shots_done"] > k, f"second run reported {later['shots_done']} <= {k}"
        assert all(later["counts"].get(bits, 0) >= n for bits, n in kept.items())
    assert all(dev_result.counts.get(bits, 0) >= n for bits, n in kept.items())


def test_a_job_preempted_max_preemptions_times_runs_to_its_end(
    shared_owner: OwnerHarness,
) -> None:
    """Given max_preemptions = 1 (`SHARED_OWNER_POLICY`), a development job preempted once runs
    to its end before the next production job."""
    client = shared_owner.client()
    dev = client.submit(analog_sequence(2), 1200, job_class="development")
    wait_running(client, dev.job_id)
    first = client.submit(analog_sequence(2), 50, job_class="production")
    first.result(timeout=60)
    wait_running(client, dev.job_id)  # back on the QPU after one preemption
    second = client.submit(analog_sequence(2), 50, job_class="production")
    dev_result = dev.result(timeout=60)
    second_result = second.result(timeout=60)
    assert dev_result.preemptions == 1 and sum(dev_result.counts.values()) == 1200
    assert second_result.timings.started_at >= dev_result.timings.ended_at


def test_an_operator_preempts_by_hand(shared_owner: OwnerHarness) -> None:
    client = shared_owner.client()
    job = client.submit(analog_sequence(2), 800, job_class="production")
    wait_running(client, job.job_id)
    reply = client.control(CommandName.PREEMPT, job_id=job.job_id)
    assert reply.ok, reply.message
    refused = client.control(CommandName.PREEMPT, job_id="not-running")  # no such job
    assert not refused.ok and "no job starting with 'not-running'" in refused.message
    result = job.result(timeout=60)
    assert result.state is JobState.DONE and result.preemptions == 1
    assert sum(result.counts.values()) == 800
