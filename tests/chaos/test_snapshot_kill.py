"""kill -9 of the owner while it writes a snapshot (issue 19's untried fault).

The owner writes an ``owner.snapshot`` after every loop that wrote events (``snapshot_every_s``
0.01, ``snapshot_every_events`` 10) of a backlog of hundreds of jobs, so most of its loop is spent encoding and publishing snapshots and
pointing to them; it is killed with SIGKILL at seeded random moments while jobs keep arriving.
After each kill a new owner activates from the last snapshot it finds plus the log's tail.
Checked at the end: every job whose publish the broker confirmed is waiting in the last owner
exactly once, and the last owner's backlog is what a full replay of the log gives (snapshot +
tail == full replay, on a real broker, across kills mid-snapshot)."""

from __future__ import annotations

import random
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from consumers.core.state import OwnerState
from schemas.enums import CommandName
from schemas.events import Topic
from tests.support.hostile import log_events, wait_until
from tests.support.sequences import analog_sequence

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(600)]

SEED = 19
KILLS = 3
PREFILL = 400
# A snapshot after every 10 events, or after any loop that wrote one, whichever comes first.
SNAPSHOT_EVERY_EVENT = {
    "QSCHED_OWNER__SNAPSHOT_EVERY_EVENTS": "10",
    "QSCHED_OWNER__SNAPSHOT_EVERY_S": "0.01",
}


def test_kill_9_while_writing_snapshots_loses_and_duplicates_nothing(
    owners: Any, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    policy = tmp_path / "policy.toml"
    policy.write_text("max_waiting_per_user = 100000\nmax_waiting_total = 100000\n")
    args = ("--backend", "synthetic", "--policy", str(policy))
    owner = owners.start(*args, env=SNAPSHOT_EVERY_EVENT)
    client = owners.client(validate_locally=False)
    assert client.control(CommandName.PAUSE).ok  # nothing starts: the backlog only grows
    sequence = analog_sequence(2)
    prefill = [client.build_job(sequence, 1) for _ in range(PREFILL)]
    submitted = [h.job_id for h in client.submit_many(prefill)]
    stop = threading.Event()
    feeder = owners.client(validate_locally=False)

    def feed() -> None:
        while not stop.is_set():
            jobs = [feeder.build_job(sequence, 1) for _ in range(5)]
            submitted.extend(h.job_id for h in feeder.submit_many(jobs))
            stop.wait(0.02)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    try:
        for _ in range(KILLS):
            stop.wait(rng.uniform(0.5, 2.0))
            owner.kill()
            owner = owners.start(*args, env=SNAPSHOT_EVERY_EVENT)
    finally:
        stop.set()
        thread.join(timeout=30)
    expected = set(submitted)
    assert len(expected) == len(submitted)

    def all_waiting() -> bool:
        status = client.control(CommandName.STATUS).status
        return status is not None and sum(status.queue_depth.values()) == len(expected)

    wait_until(all_waiting, 120, f"{len(expected)} jobs waiting in the last owner")
    shown = {e.job_id for e in client.queue(timeout=60)}
    events = log_events(owners.broker.channel(), owners.broker.topology)
    replayed = OwnerState.for_half_life(3600.0)
    for event in events:
        replayed.apply(event)
    assert shown == expected == set(replayed.waiting)
    accepted = Counter(e.job_id for e in events if e.topic == Topic.JOB_ACCEPTED)
    assert set(accepted) == expected and max(accepted.values()) == 1
    snapshots = sum(1 for e in events if e.topic == Topic.OWNER_SNAPSHOT)
    activations = sum(1 for e in events if e.topic == Topic.OWNER_ACTIVATED)
    assert activations == KILLS + 1 and snapshots >= 20, (activations, snapshots)
