"""Results and histories from the owner, without scanning the log: a real owner, a real broker.

One owner serves every assert (snapshots every 10 events, so the job offset index goes through
snapshots); a second owner takes over at the end and answers from the index it loaded.
"""

from __future__ import annotations

import pytest

from producers.errors import CommandRefused
from producers.results import UnknownToOwner, fetch_history_from_owner, fetch_result_from_owner
from schemas.enums import JobState
from tests.conftest import OwnerHarness
from tests.support.owners import wait_active
from tests.support.sequences import analog_sequence

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_result_and_history_come_from_the_owner_pushed_and_across_a_takeover(
    owners: OwnerHarness,
) -> None:
    env = {"QSCHED_OWNER__SNAPSHOT_EVERY_EVENTS": "10"}
    first = owners.start("--backend", "synthetic", "--shot-rate", "50", env=env)
    submitter = owners.client(validate_locally=False)
    done = submitter.submit(analog_sequence(2), 20, job_class="development")
    finished = done.result(timeout=60)
    assert finished.state is JobState.DONE

    # Another client of the same user: the result by prefix, and the job's history in order.
    other = owners.client(validate_locally=False)
    found, entry = fetch_result_from_owner(other, done.job_id[:8])
    assert entry is None and found == finished
    history = fetch_history_from_owner(other, done.job_id)
    topics = [e.topic for e in history]
    assert topics[0] == "job.accepted" and topics[-1] == "job.done", topics
    assert "job.started" in topics and "job.progress" not in topics
    assert {e.job_id for e in history} == {done.job_id}
    assert history[0].data["job"]["sequence"] == ""  # the bulk is left out

    # result --wait: asked once, then pushed when the job ends (the waiter sends nothing more).
    slow = submitter.submit(analog_sequence(2), 150, job_class="development")  # ~3 s at 50/s
    watcher = owners.client(validate_locally=False)
    found, entry = fetch_result_from_owner(watcher, slow.job_id, wait=True)
    assert found is None and entry is not None
    assert entry.state in (JobState.QUEUED, JobState.RUNNING), entry
    pushed = watcher.wait_result(slow.job_id, timeout=60)
    assert pushed.state is JobState.DONE and sum(pushed.counts.values()) == 150

    with pytest.raises(UnknownToOwner):
        fetch_result_from_owner(other, "00000000-0000-4000-8000-000000000000")
    with pytest.raises(CommandRefused, match="too short"):
        fetch_result_from_owner(other, "abc")

    # A new owner knows no result in memory: it reads each at the offset its index holds.
    first.stop()
    owners.start("--backend", "synthetic", env=env, wait=False)
    fresh = owners.client(validate_locally=False)
    wait_active(fresh, timeout_s=90)
    assert fresh.fetch_result(done.job_id) == finished
    assert fetch_result_from_owner(fresh, slow.job_id[:8])[0] == pushed
    again = fetch_history_from_owner(fresh, done.job_id)
    assert [e.event_id for e in again] == [e.event_id for e in history]
