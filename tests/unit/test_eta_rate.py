"""ETAs count with the QPU's measured shot rate, and say why when there is none (issue 24 item 8):
the pure core, driven as the shell drives it, with the time as an argument."""

from __future__ import annotations

from datetime import timedelta

import pytest

from consumers.core.policy import estimated_duration_s
from consumers.core.shotrate import ShotRate
from consumers.core.snapshot import from_data, to_data
from consumers.core.step import Command, Dispatch, Finished
from consumers.core.view import queue_entries, status_of
from schemas.control import ControlCommand
from schemas.enums import CommandName
from schemas.events import JobStarted, Topic, payload_of
from schemas.policy import parse_policy
from tests.unit.core_harness import Harness

SLOW_POLICY = parse_policy("shot_rate_hz = 5\njob_overhead_s = 1\n")  # 100 shots: 21 s


def duration_s(rate: ShotRate, shots: int) -> float:
    return estimated_duration_s(SLOW_POLICY, shots, rate.costs(SLOW_POLICY.job_overhead_s))


def etas(h: Harness) -> dict[str, float | None]:
    return {e.job_id: e.eta_s for e in queue_entries(h.state, h.policy, h.now)}


def test_etas_use_the_policys_rate_until_a_run_measured_one_then_the_measured_rate() -> None:
    """Given a policy of 5 shots/s and 1 s per run, when a 100-shot run took 4 s, then the job
    behind the next 100-shot run starts in 1 + 100 x 0.03 = 4 s, not the policy's 21 s."""
    h = Harness(SLOW_POLICY)
    first = h.submit(shots=100)
    second = h.submit(shots=100)
    third = h.submit(shots=200)
    h.feed(Dispatch())
    assert h.state.running is not None and h.state.running.job.job_id == first
    assert etas(h) == {second: pytest.approx(21.0), third: pytest.approx(42.0)}
    h.now += timedelta(seconds=4)
    h.feed(Finished(first, {"00": 100}))
    h.feed(Dispatch())
    assert h.state.running is not None and h.state.running.job.job_id == second
    assert etas(h) == {third: pytest.approx(4.0)}
    h.now += timedelta(seconds=1)  # the running job's elapsed time counts down
    assert etas(h) == {third: pytest.approx(3.0)}


def test_the_overhead_is_never_more_than_the_shortest_run_took() -> None:
    """Runs shorter than the policy's overhead (a fast backend): the overhead is what the
    shortest run took, so a job is not said to need a second it never needed."""
    rate = ShotRate()
    for _ in range(3):
        rate.record(40, 0.2)
    assert duration_s(rate, 40) == pytest.approx(0.2)  # the policy's: 9 s
    rate.record(400, 2.0)  # 0.2 s, then 1.8 s for 400 shots: 0.0039 s per shot of all 520
    assert duration_s(rate, 400) == pytest.approx(0.2 + 400 * 1.8 / 520)
    rate.record(0, 3.0)  # a run that measured nothing is no evidence
    assert len(rate.samples) == 4


def test_a_paused_qpu_is_why_a_job_in_line_has_no_eta_and_the_snapshot_keeps_the_rate() -> None:
    """Given jobs in line, when an operator pauses the QPU, then each has no ETA and says the
    QPU is paused (was: "unknown"); a snapshot keeps the measured runs."""
    h = Harness(SLOW_POLICY)
    first = h.submit(shots=100)
    h.feed(Dispatch())
    h.now += timedelta(seconds=4)
    h.feed(Finished(first, {"00": 100}))
    waiting = h.submit(shots=50)
    h.feed(Command(ControlCommand(command=CommandName.PAUSE, issued_at=h.now), "guest"))
    (entry,) = queue_entries(h.state, h.policy, h.now)
    assert entry.job_id == waiting and entry.position == 1
    assert entry.eta_s is None and entry.eta_unknown == "paused"
    h.feed(Command(ControlCommand(command=CommandName.RESUME, issued_at=h.now), "guest"))
    (entry,) = queue_entries(h.state, h.policy, h.now)
    assert entry.eta_s == 0.0 and entry.eta_unknown is None
    restored = from_data(to_data(h.state), h.policy.fair_share_half_life_s)
    assert list(restored.shot_rate.samples) == [(100, 4.0)]


def test_a_qpu_run_and_its_result_name_the_specs_it_ran_under() -> None:
    """Given the shell's dispatch names the digest of the current device specs, then the run's
    `job.started` and the job's result carry it, as a lane run's do (was: None on the QPU)."""
    h = Harness(SLOW_POLICY)
    job = h.submit(shots=10)
    h.feed(Dispatch(specs="0123456789ab"))
    started = next(e for e in h.log if e.topic == Topic.JOB_STARTED)
    assert payload_of(started, JobStarted).specs == "0123456789ab"
    h.now += timedelta(seconds=3)
    h.feed(Finished(job, {"0": 10}))
    done = next(e for e in h.log if e.topic == Topic.JOB_DONE)
    assert done.result is not None and done.result.specs == "0123456789ab"


def test_status_says_a_calibration_waits_for_the_running_job() -> None:
    """Given a running job, when an operator starts a calibration without --now, then the
    status says it is pending (was: nothing), and no longer once it started."""
    h = Harness(SLOW_POLICY)
    job = h.submit(shots=100)
    h.feed(Dispatch())
    start = ControlCommand(command=CommandName.CALIBRATION_START, issued_at=h.now)
    h.feed(Command(start, "guest"))
    assert status_of(h.state, h.policy, h.now, "o", "b").calibration_pending
    h.now += timedelta(seconds=5)
    h.feed(Finished(job, {"0": 100}))
    h.feed(Dispatch())
    status = status_of(h.state, h.policy, h.now, "o", "b")
    assert status.qpu_state.value == "CALIBRATING" and not status.calibration_pending
