"""A frozen owner (SIGSTOP) loses the QPU; when it wakes (SIGCONT) nothing it does counts.

Given an active owner and a standby with a short heartbeat, when the active owner is frozen
mid-job, then the broker drops its connection, the standby takes over (a higher term) within the
heartbeat bound and finishes the work; when the frozen owner resumes it finds its connection
gone and stands by again (the log is read only after it did), it started nothing, and no event of
its old term changed the state: every job ends exactly once (the invariant checker).
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest

from schemas import CommandName, JobState
from tests.conftest import OwnerHarness
from tests.integration.test_owner import events
from tests.support.invariants import check
from tests.support.owners import wait_for_log, wait_running
from tests.support.reliability import record
from tests.support.sequences import analog_sequence

pytestmark = [pytest.mark.chaos, pytest.mark.reliability]

HEARTBEAT_S = 2
ENV = {"QSCHED_BROKER__HEARTBEAT_S": str(HEARTBEAT_S), "QSCHED_OWNER__LEASE_RETRY_S": "0.2"}
STANDBY = "standby: another owner holds"  # what an owner logs once it waits for the lease
TAKEOVER_BOUND_S = 10 * HEARTBEAT_S  # the broker needs two missed heartbeats, plus activation


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
@pytest.mark.timeout(300)
def test_a_frozen_owner_is_replaced_and_nothing_it_writes_after_waking_counts(
    owners: OwnerHarness,
) -> None:
    frozen = owners.start("--backend", "synthetic", "--shot-rate", "100", env=ENV)
    client = owners.client()
    first = client.control(CommandName.STATUS).status.owner_id
    owners.start("--backend", "synthetic", "--shot-rate", "100", env=ENV, wait=False)
    handles = client.submit_many([client.build_job(analog_sequence(2), 300) for _ in range(4)])
    wait_running(client, handles[0].job_id)
    os.killpg(frozen.pid, signal.SIGSTOP)
    frozen_at = time.monotonic()
    try:
        deadline = frozen_at + TAKEOVER_BOUND_S * 3
        while True:
            try:
                status = client.control(CommandName.STATUS, timeout=2).status
            except Exception:  # no owner answers while the frozen one still holds the lease
                status = None
            if status is not None and status.owner_id != first:
                break
            assert time.monotonic() < deadline, "no standby took over from the frozen owner"
        took_over_s = time.monotonic() - frozen_at
        later = client.submit_many([client.build_job(analog_sequence(2), 50) for _ in range(3)])
    finally:
        os.killpg(frozen.pid, signal.SIGCONT)
    results = [h.result(timeout=120) for h in [*handles, *later]]
    # What the woken owner does shows only once it has done it: it finds its connection gone,
    # says so, and stands by again (it was the first active owner: never a standby before).
    wait_for_log(frozen, "lost the broker or the lease", timeout_s=120)
    wait_for_log(frozen, STANDBY, timeout_s=120)
    log = events(owners)
    sent = [h.job_id for h in [*handles, *later]]
    verdict = check(log, sent, {r.job_id: r for r in results})
    record(
        "owner frozen (SIGSTOP) then woken",
        verdict=verdict,
        owner_crashes=int(frozen.process.poll() is not None),
        worst_gap_s=took_over_s,
        note=(
            f"heartbeat {HEARTBEAT_S} s: the standby took over {took_over_s:.1f} s after the "
            f"freeze; the woken owner wrote {verdict.stale_events} events under its old term "
            "after waking (ignored by apply)"
        ),
    )
    assert verdict.ok, verdict.problems
    assert all(r.state is JobState.DONE for r in results)
    assert took_over_s < TAKEOVER_BOUND_S, f"takeover took {took_over_s:.1f} s"
    terms = [e.data["term"] for e in log if e.topic == "owner.activated"]
    assert terms == sorted(terms) and len(set(terms)) == len(terms)
    assert verdict.stale_starts == 0  # the checker's split-brain guard, named
    finals = Counter(e.job_id for e in log if e.result is not None and e.job_id)
    assert finals == {h.job_id: 1 for h in [*handles, *later]}
    assert frozen.process.poll() is None, "the woken owner must stand by, not die"
