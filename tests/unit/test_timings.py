"""A job's timings count every run: a preempted job reports its first start, each run's interval
and where it ran, all of its QPU time, and a queue wait from its acceptance to its first start
(the definition metrics, `simulate` and usage share)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from consumers.core.outcomes import Reply
from consumers.core.step import Command, Dispatch, Finished, LaneDispatch
from schemas.control import ControlCommand
from schemas.enums import CommandName, JobState
from schemas.jobs import JobResult
from schemas.policy import parse_policy
from tests.unit.core_harness import Harness
from tests.unit.test_owner_state import RANDOM_POLICY


def _result(h: Harness, job_id: str) -> JobResult:
    (event,) = [e for e in h.log if e.job_id == job_id and e.result is not None]
    assert event.result is not None
    return event.result


def test_a_preempted_jobs_result_counts_its_first_start_and_every_run() -> None:
    """Given a development job that waits 10 s, runs 5 s, is preempted, waits 1 s and runs 3 s
    more, its result says: started at the first start, waited 10 s, ran 8 s on the QPU in two
    runs (the old result said 16 s of wait and 3 s of run: the last run only)."""
    h = Harness()
    dev = h.submit(job_class="development", shots=1000)
    accepted = h.now
    h.now += timedelta(seconds=10)
    h.feed(Dispatch())
    first_start = h.now
    h.now += timedelta(seconds=5)
    prod = h.submit(job_class="production", shots=10)
    h.feed(Dispatch())  # preempts the development job
    h.feed(Finished(dev, {"0": 400}, canceled=True))
    preempted_at = h.now
    h.feed(Dispatch())
    assert h.state.running is not None and h.state.running.job.job_id == prod
    h.now += timedelta(seconds=1)
    h.feed(Finished(prod, {"0": 10}))
    h.feed(Dispatch())
    second_start = h.now
    h.now += timedelta(seconds=3)
    h.feed(Finished(dev, {"0": 600}))

    result = _result(h, dev)
    assert result.state is JobState.DONE and result.preemptions == 1
    timings = result.timings
    assert timings.queued_at == accepted and timings.started_at == first_start
    assert timings.queue_wait_s == 10.0
    assert [(r.started_at, r.ended_at, r.lane, r.outcome) for r in timings.runs] == [
        (first_start, preempted_at, None, "preempted"),
        (second_start, second_start + timedelta(seconds=3), None, "DONE"),
    ]
    assert [r.attempt for r in timings.runs] == [1, 2]
    assert timings.qpu_s == timings.execution_s == pytest.approx(8.001)  # 5.001 s + 3 s
    assert result.attempts == 2


def test_a_job_canceled_while_waiting_again_keeps_its_earlier_run() -> None:
    h = Harness()
    dev = h.submit(job_class="development", shots=1000)
    h.feed(Dispatch())
    h.now += timedelta(seconds=2)
    h.submit(job_class="production", shots=10)
    h.feed(Dispatch())
    h.feed(Finished(dev, {"0": 100}, canceled=True))
    h.feed(Dispatch())  # the production job runs; the development one waits
    effects = h.feed(Command(ControlCommand(command=CommandName.CANCEL, job_id=dev), "alice"))
    result = _result(h, dev)
    assert result.state is JobState.CANCELED
    assert [r.outcome for r in result.timings.runs] == ["preempted"]
    assert result.timings.started_at == result.timings.runs[0].started_at
    assert result.timings.qpu_s == result.timings.runs[0].seconds > 0
    assert any(isinstance(e, Reply) and e.job is not None for e in effects)  # traced by the shell


def test_lane_time_is_a_run_but_not_qpu_time() -> None:
    h = Harness(parse_policy(RANDOM_POLICY))
    h.submit(job_class="production", shots=1000)
    h.feed(Dispatch())
    dev = h.submit(job_class="development", shots=10)
    h.now += timedelta(seconds=5)
    h.feed(LaneDispatch("emulator-1", "abc123"))
    h.now += timedelta(seconds=2)
    h.feed(Finished(dev, {"00": 10}))
    timings = _result(h, dev).timings
    (run,) = timings.runs
    assert run.lane == "emulator-1" and run.seconds == 2.0
    assert timings.execution_s == 2.0 and timings.qpu_s == 0.0
    assert timings.queue_wait_s == 5.0
