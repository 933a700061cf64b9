"""kill -9 of the active owner in each QPU state, with a backlog of 200 jobs.

Given an active owner and a standby, 200 jobs waiting and the QPU in a given state, when the
active owner is killed, then the standby takes over in the same state (pause, drain, mode and
calibration survive), and once the state is released every job ends exactly once.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest

from producers.client import QPUClient
from schemas import CommandName, JobState, Mode, QPUState
from tests.conftest import OwnerHarness
from tests.integration.test_owner import events
from tests.invariants import check
from tests.owners import wait_active, wait_running
from tests.reliability import record
from tests.sequences import analog_sequence

pytestmark = [pytest.mark.chaos, pytest.mark.reliability]

ENV = {"QSCHED_OWNER__LEASE_RETRY_S": "0.2"}
BACKLOG = 200
SEQ = analog_sequence(2)


def _enter(state: str, client: QPUClient, first_job: str) -> Callable[[], None]:
    """Put the QPU in `state`; returns how to release it after the failover."""
    if state == "idle":
        assert client.control(CommandName.PAUSE).ok  # hold the backlog, then resume: idle
        assert client.control(CommandName.RESUME).ok
        return lambda: None
    if state == "running":
        wait_running(client, first_job)
        return lambda: None
    if state in ("paused", "draining"):
        command = CommandName.PAUSE if state == "paused" else CommandName.DRAIN
        assert client.control(command).ok
        return lambda: _ok(client, CommandName.RESUME)
    if state == "calibrating":
        assert client.control(CommandName.CALIBRATION_START, force=True).ok
        return lambda: _ok(client, CommandName.CALIBRATION_COMPLETE)
    if state == "maintenance":
        assert client.control(CommandName.MODE, mode=Mode.MAINTENANCE, message="laser").ok
        return lambda: _ok(client, CommandName.MODE, mode=Mode.PRODUCTION)
    if state == "preempting":
        wait_running(client, first_job)
        assert client.control(CommandName.PREEMPT, job_id=first_job).ok
        return lambda: None
    raise AssertionError(state)


def _ok(client: QPUClient, command: CommandName, **fields: object) -> None:
    reply = client.control(command, **fields)  # type: ignore[arg-type]
    assert reply.ok, reply.message


EXPECTED = {
    "paused": QPUState.PAUSED,
    "draining": QPUState.DRAINING,
    "calibrating": QPUState.CALIBRATING,
}


SLOW = pytest.mark.slow  # the whole matrix runs in CI's slow tier; two states in the default run


@pytest.mark.timeout(400)
@pytest.mark.parametrize(
    "state",
    [
        "running",
        "paused",
        pytest.param("idle", marks=SLOW),
        pytest.param("draining", marks=SLOW),
        pytest.param("calibrating", marks=SLOW),
        pytest.param("maintenance", marks=SLOW),
        pytest.param("preempting", marks=SLOW),
    ],
)
def test_kill_9_in_each_state_loses_no_job_and_keeps_the_state(
    owners: OwnerHarness, state: str
) -> None:
    active = owners.start("--backend", "synthetic", "--shot-rate", "200", env=ENV)
    client = owners.client()
    first_id = client.control(CommandName.STATUS).status.owner_id
    owners.start("--backend", "synthetic", "--shot-rate", "200", env=ENV, wait=False)
    handles = client.submit_many(
        [client.build_job(SEQ, 400 if n == 0 else 20) for n in range(BACKLOG)]
    )
    release = _enter(state, client, handles[0].job_id)
    active.kill()
    killed_at = time.monotonic()
    deadline = killed_at + 30
    while (
        status := wait_active(client, timeout_s=20).status
    ) is None or status.owner_id == first_id:
        assert time.monotonic() < deadline, "no standby took over"
    gap_s = time.monotonic() - killed_at
    while state in EXPECTED and status.qpu_state is not EXPECTED[state]:
        assert time.monotonic() < deadline, f"after failover the QPU is {status.qpu_state}"
        client.poll(0.1)
        status = client.control(CommandName.STATUS).status
    if state == "maintenance":
        assert status.mode is Mode.MAINTENANCE and status.mode_message == "laser"
    release()
    results = [h.result(timeout=120) for h in handles]
    log = events(owners)
    verdict = check(log, [h.job_id for h in handles], {r.job_id: r for r in results})
    record(
        "owner kill -9 in each QPU state",
        verdict=verdict,
        owner_crashes=sum(o.process.poll() is not None for o in owners.owners if o is not active),
        worst_gap_s=gap_s,
        note="a backlog of 200 jobs; states run: idle, running, paused, draining, calibrating, "
        "maintenance, preempting (the last five in the slow tier)",
    )
    assert verdict.ok, verdict.problems[:20]
    assert all(r.state is JobState.DONE for r in results), Counter(r.state for r in results)
    assert all(sum(r.counts.values()) == r.shots for r in results)
    finals = Counter(e.job_id for e in log if e.result is not None and e.job_id)
    assert finals == {h.job_id: 1 for h in handles}
