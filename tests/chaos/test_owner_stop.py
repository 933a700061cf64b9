"""Stopping owners: SIGTERM in the middle of a job, and a soak run with kills (slow tier)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from schemas import JobState
from tests.conftest import OwnerHarness
from tests.integration.test_owner import events
from tests.support.invariants import check
from tests.support.owners import wait_for_log, wait_running
from tests.support.sequences import analog_sequence

pytestmark = pytest.mark.chaos

LONG = 2000  # shots of the jobs the soak's kills cut: 4 s at 500 shots/s (the device's max)


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_sigterm_mid_job_stops_the_owner_gracefully_and_the_job_is_not_lost(
    owners: OwnerHarness,
) -> None:
    """Given an owner running a 5 s job, SIGTERM makes it exit 0 within 10 s (no SIGKILL needed);
    the next owner runs the job, which ends DONE with all its shots and exactly one result."""
    first = owners.start("--backend", "synthetic", "--shot-rate", "200")
    client = owners.client()
    job = client.submit(analog_sequence(2), 1000, job_class="production")
    queued = client.submit(analog_sequence(2), 10, job_class="production")
    wait_running(client, job.job_id)
    assert first.stop(grace_s=10) == 0, f"owner did not exit cleanly:\n{first.log()}"
    assert "Traceback" not in first.log()
    owners.start("--backend", "synthetic", "--shot-rate", "200")
    results = [job.result(timeout=60), queued.result(timeout=60)]
    assert all(r.state is JobState.DONE for r in results)
    assert sum(results[0].counts.values()) == 1000 and sum(results[1].counts.values()) == 10
    finals = Counter(e.job_id for e in events(owners) if e.result is not None)
    assert finals == {job.job_id: 1, queued.job_id: 1}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_soak_600_jobs_across_three_owner_kills_mid_job_each_end_exactly_once(
    owners: OwnerHarness,
) -> None:
    """Given 600 short jobs of every class and a standby always ready, killing the active owner
    three times, each time while a 4 s job runs (the short jobs take 10-100 ms each: a kill at a
    random moment, as before, mostly landed between jobs), cuts each long job once and loses
    none: every job ends exactly once (the invariant checker)."""
    env = {"QSCHED_OWNER__LEASE_RETRY_S": "0.2"}
    args = ("--backend", "synthetic", "--shot-rate", "500")
    owners.start(*args, env=env)
    client = owners.client()
    rng = random.Random(16)
    classes = ("calibration", "production", "development")
    jobs = [
        client.build_job(
            analog_sequence(2), rng.randint(5, 50), job_class=rng.choice(classes), priority=i % 10
        )
        for i in range(600)
    ]
    handles = client.submit_many(jobs)
    longs = []
    for _ in range(3):
        standby = owners.start(*args, env=env, wait=False)
        wait_for_log(standby, "standby: another owner holds", timeout_s=60)
        active = next(o for o in owners.owners if o is not standby and o.process.poll() is None)
        # Top class and priority: it preempts whatever runs and starts next.
        long = client.submit(analog_sequence(2), LONG, job_class="calibration", priority=9)
        longs.append(long)
        wait_running(client, long.job_id, timeout_s=120)
        active.kill()
    results = [h.result(timeout=300) for h in [*handles, *longs]]
    verdict = check(
        events(owners), [h.job_id for h in [*handles, *longs]], {r.job_id: r for r in results}
    )
    assert verdict.ok, verdict.problems[:20]
    assert all(r.state is JobState.DONE for r in results)
    assert [sum(r.counts.values()) for r in results] == [j.shots for j in jobs] + [LONG] * 3
    assert [r.attempts for r in results[-3:]] == [2, 2, 2]  # each kill cut its long job once
