"""kill -9 of the active owner in each QPU state, with a backlog of 200 jobs.

Given an active owner and a standby and the QPU in a given state, when the active owner is
killed, then the standby takes over and what it does first is what that state asks for:

- idle (nothing waiting, nothing running; the backlog is sent after the failover): idle;
- running: the interrupted job is cut off and run again first (its second attempt);
- preempting (the kill lands while the running job is being preempted): the new owner does not
  stay preempting; the preempted job runs again later, with all its shots;
- paused, draining, calibrating, maintenance: the same state (and mode message), and the new
  owner starts nothing until an operator releases it.

Then every job ends exactly once (the invariant checker, against the 200 jobs sent).
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from producers.client import QPUClient
from producers.handle import JobHandle
from schemas import CommandName, Event, JobState, Mode, QPUState
from schemas.reports import StatusReport
from tests.conftest import OwnerHarness
from tests.integration.test_owner import events
from tests.support.invariants import check
from tests.support.owners import wait_active, wait_running
from tests.support.reliability import record
from tests.support.sequences import analog_sequence
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.reliability]

ENV = {"QSCHED_OWNER__LEASE_RETRY_S": "0.2"}
BACKLOG = 200
SEQ = analog_sequence(2)
HELD = {  # states that hold the QPU, and the command that releases each
    "paused": (QPUState.PAUSED, CommandName.RESUME),
    "draining": (QPUState.DRAINING, CommandName.RESUME),
    "calibrating": (QPUState.CALIBRATING, CommandName.CALIBRATION_COMPLETE),
    "maintenance": (None, CommandName.MODE),
}


def _enter(state: str, client: QPUClient, first_job: str) -> None:
    """Put the QPU in `state` (for idle: nothing to do, nothing was sent)."""
    if state in ("running", "preempting"):
        wait_running(client, first_job)
    if state == "preempting":
        assert client.control(CommandName.PREEMPT, job_id=first_job).ok
    elif state in ("paused", "draining"):
        wait_running(client, first_job)
        assert client.control(CommandName.PAUSE if state == "paused" else CommandName.DRAIN).ok
    elif state == "calibrating":
        assert client.control(CommandName.CALIBRATION_START, force=True).ok
    elif state == "maintenance":
        assert client.control(CommandName.MODE, mode=Mode.MAINTENANCE, message="laser").ok


def _release(state: str, client: QPUClient) -> None:
    fields: dict[str, object] = {"mode": Mode.PRODUCTION} if state == "maintenance" else {}
    reply = client.control(HELD[state][1], **fields)  # type: ignore[arg-type]
    assert reply.ok, reply.message


def _held_state_kept(state: str, client: QPUClient, status: StatusReport) -> StatusReport:
    expected = HELD[state][0]
    if state == "maintenance":
        assert status.mode is Mode.MAINTENANCE and status.mode_message == "laser", status
        return status
    return wait_until(  # the new owner reports the state once its recovery is done
        lambda: (s := client.control(CommandName.STATUS).status).qpu_state is expected and s,
        f"the QPU {expected} after the failover (last: {status.qpu_state})",
        30,
        step=lambda: client.poll(0.1),
    )


def _new_term_starts_before_release(
    log: list[Event], term: int, command: CommandName
) -> list[str | None]:
    """Jobs the new owner (of `term`) started before it logged the releasing command."""
    started: list[str | None] = []
    for event in log:
        if event.term != term:
            continue
        if event.topic == f"control.{command.value}":
            return started
        if event.topic == "job.started":
            started.append(event.job_id)
    raise AssertionError(f"no control.{command.value} of term {term} in the log")


SLOW = pytest.mark.slow  # the whole matrix runs in CI's slow tier (test_owner_faults and
# test_hostile kill the active owner in the default run)


@pytest.mark.timeout(400)
@pytest.mark.parametrize(
    "state",
    [
        pytest.param("running", marks=SLOW),
        pytest.param("paused", marks=SLOW),
        pytest.param("idle", marks=SLOW),
        pytest.param("draining", marks=SLOW),
        pytest.param("calibrating", marks=SLOW),
        pytest.param("maintenance", marks=SLOW),
        pytest.param("preempting", marks=SLOW),
    ],
)
def test_kill_9_in_each_state_the_new_owner_does_what_the_state_asks_and_loses_no_job(
    owners: OwnerHarness, state: str
) -> None:
    active = owners.start("--backend", "synthetic", "--shot-rate", "200", env=ENV)
    client = owners.client()
    first_id = client.control(CommandName.STATUS).status.owner_id
    owners.start("--backend", "synthetic", "--shot-rate", "200", env=ENV, wait=False)
    jobs = [client.build_job(SEQ, 400 if n == 0 else 20) for n in range(BACKLOG)]
    handles: list[JobHandle] = [] if state == "idle" else client.submit_many(jobs)
    _enter(state, client, jobs[0].job_id)
    active.kill()
    killed_at = time.monotonic()
    deadline = killed_at + 60
    while (
        status := wait_active(client, timeout_s=20).status
    ) is None or status.owner_id == first_id:
        assert time.monotonic() < deadline, "no standby took over"
    gap_s = time.monotonic() - killed_at
    seen = status.qpu_state.value
    if state == "idle":
        assert status.qpu_state is QPUState.IDLE and status.running is None, status
        handles = client.submit_many(jobs)
    elif state in HELD:
        status = _held_state_kept(state, client, status)
        seen = f"{status.qpu_state.value} (mode {status.mode.value})"
        _release(state, client)
    elif state == "preempting":
        status = wait_until(
            lambda: (
                (s := client.control(CommandName.STATUS).status).qpu_state
                is not QPUState.PREEMPTING
                and s
            ),
            "the new owner out of PREEMPTING",
            30,
            step=lambda: client.poll(0.1),
        )
    results = [h.result(timeout=180) for h in handles]
    log = events(owners)
    verdict = check(log, [h.job_id for h in handles], {r.job_id: r for r in results})
    term = max(e.data["term"] for e in log if e.topic == "owner.activated")
    new_starts = [e.job_id for e in log if e.topic == "job.started" and e.term == term]
    record(
        f"owner kill -9 while {state}",
        verdict=verdict,
        owner_crashes=sum(o.process.poll() is not None for o in owners.owners if o is not active),
        worst_gap_s=gap_s,
        note=(
            f"{len(handles)} jobs; the new owner reported {seen} after taking over and "
            f"started {len(new_starts)} runs; {verdict.activations} activations"
        ),
    )
    assert verdict.ok, verdict.problems[:20]
    assert all(r.state is JobState.DONE for r in results), Counter(r.state for r in results)
    assert all(sum(r.counts.values()) == r.shots for r in results)
    finals = Counter(e.job_id for e in log if e.result is not None and e.job_id)
    assert finals == {h.job_id: 1 for h in handles}
    first = results[0]
    if state == "running":
        assert new_starts[0] == first.job_id and first.attempts == 2, (new_starts[:3], first)
    elif state == "preempting":
        assert first.attempts >= 2, first  # cut (preempted or by the kill), then run again
    elif state == "idle":
        assert verdict.activations == 2 and first.attempts == 1
    elif state in HELD:
        early = _new_term_starts_before_release(log, term, HELD[state][1])
        assert not early, f"the new owner started {early} while {state}"
