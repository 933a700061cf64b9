"""Emulator lanes in the pure core: placement per class and mode, lane runs, results stamped
with lane, specs and epoch, and lane runs back in the backlog after a takeover."""

from __future__ import annotations

from datetime import timedelta

from consumers.core.step import Command, Dispatch, Finished, LaneDispatch, Tick
from consumers.core.view import status_of
from schemas.control import ControlCommand
from schemas.enums import CommandName, JobState, Mode
from schemas.jobs import JobResult
from schemas.policy import parse_policy
from tests.unit.core_harness import Harness
from tests.unit.test_owner_state import RANDOM_POLICY

# development: either in production and development mode, emulator only in maintenance
POLICY = parse_policy(RANDOM_POLICY)


def _lane_result(h: Harness, lane: str) -> JobResult:
    run = h.state.lanes[lane]
    (reply,) = h.feed(Finished(run.job.job_id, {"00": run.job.remaining_shots}))
    assert isinstance(reply.message, JobResult)  # type: ignore[attr-defined]
    return reply.message  # type: ignore[attr-defined,no-any-return]


def test_given_a_production_job_on_the_qpu_when_a_lane_is_free_then_development_runs_there() -> (
    None
):
    h = Harness(POLICY)
    production = h.submit(job_class="production", shots=1000)
    h.feed(Dispatch())
    development = h.submit(job_class="development", shots=10)
    h.feed(Dispatch())  # the QPU is busy with production (development may not preempt here)
    h.feed(LaneDispatch("emulator-1", "abc123"))
    assert h.state.running is not None and h.state.running.job.job_id == production
    assert h.state.lanes["emulator-1"].job.job_id == development
    status = status_of(h.state, h.policy, h.now, "o", "synthetic")
    assert status.lanes["emulator-1"].job_id == development  # type: ignore[union-attr]
    assert status.lanes["emulator-2"] is None
    result = _lane_result(h, "emulator-1")
    assert result.state is JobState.DONE and result.counts == {"00": 10}
    assert (result.lane, result.specs, result.epoch, result.backend) == (
        "emulator-1",
        "abc123",
        0,
        "emulator",
    )
    assert h.state.lanes == {}


def test_qpu_only_classes_and_jobs_that_insist_on_the_qpu_never_take_a_lane() -> None:
    h = Harness(POLICY)
    h.submit(job_class="production")
    h.submit(job_class="development", require_qpu=True)
    assert h.feed(LaneDispatch("emulator-1", "s")) == []
    assert h.state.lanes == {}


def test_in_maintenance_emulator_jobs_run_on_lanes_and_qpu_jobs_wait() -> None:
    h = Harness(POLICY)
    h.feed(Command(ControlCommand(command=CommandName.MODE, mode=Mode.MAINTENANCE), "guest"))
    production = h.submit(job_class="production")
    development = h.submit(job_class="development")
    h.feed(Dispatch())
    assert h.state.running is None
    h.feed(LaneDispatch("emulator-2", "s"))
    assert h.state.lanes["emulator-2"].job.job_id == development
    held = status_of(h.state, h.policy, h.now, "o", "s").held_reasons
    assert held[production] == "held: maintenance mode does not run production jobs"


def test_a_lane_that_is_not_in_the_policy_or_busy_starts_nothing() -> None:
    h = Harness(POLICY)
    h.submit(job_class="development")
    h.submit(job_class="development")
    assert h.feed(LaneDispatch("emulator-9", "s")) == []
    h.feed(LaneDispatch("emulator-1", "s"))
    assert h.feed(LaneDispatch("emulator-1", "s")) == []
    assert len(h.state.lanes) == 1


def test_after_a_takeover_lane_runs_go_back_to_the_backlog_with_their_counts() -> None:
    h = Harness(POLICY)
    job = h.submit(job_class="development", shots=10)
    h.feed(LaneDispatch("emulator-1", "s"))
    h.activate()  # a new owner: Recovered
    assert h.state.lanes == {} and job in h.state.waiting
    assert h.state.waiting[job].attempt == 2
    h.feed(LaneDispatch("emulator-2", "s"))
    assert _lane_result(h, "emulator-2").state is JobState.DONE


def test_placement_emulator_keeps_a_class_off_the_qpu() -> None:
    policy = parse_policy(
        RANDOM_POLICY.replace(
            'production = "either", development', 'production = "emulator", development'
        )
    )
    h = Harness(policy)
    job = h.submit(job_class="development")
    h.feed(Dispatch())
    assert h.state.running is None
    reason = status_of(h.state, h.policy, h.now, "o", "s").held_reasons[job]
    assert reason == "held: production mode runs development jobs on emulator lanes only"


def test_the_timeline_keeps_lane_runs_on_their_own_tracks_beside_the_qpu_run() -> None:
    from consumers.tools.eventlog.html import render_html
    from consumers.tools.eventlog.model import build_timeline
    from consumers.tools.eventlog.perfetto import LANES_PID, export_trace

    h = Harness(POLICY)
    production = h.submit(job_class="production", shots=1000)
    h.feed(Dispatch())
    development = h.submit(job_class="development", shots=10)
    h.feed(LaneDispatch("emulator-2", "s"))
    _lane_result(h, "emulator-2")
    timeline = build_timeline(h.log)
    (qpu_run,) = timeline.runs
    (lane_run,) = timeline.lane_runs
    assert (qpu_run.job_id, qpu_run.state) == (production, "RUNNING")  # not cut by the lane start
    assert (lane_run.job_id, lane_run.lane, lane_run.state) == (development, "emulator-2", "DONE")
    trace = export_trace(timeline)["traceEvents"]
    assert [e["args"]["job_id"] for e in trace if e.get("pid") == LANES_PID and e["ph"] == "X"] == [
        development
    ]
    assert ">emulator-2</div>" in render_html(timeline)


def test_while_the_qpu_calibrates_lanes_run_and_qpu_only_jobs_wait() -> None:
    h = Harness(POLICY)
    h.feed(Command(ControlCommand(command=CommandName.CALIBRATION_START), "guest"))
    h.feed(Dispatch())
    assert h.state.qpu.value == "CALIBRATING"
    production = h.submit(job_class="production")
    development = h.submit(job_class="development")
    h.feed(Dispatch())
    h.feed(LaneDispatch("emulator-1", "s"))
    assert h.state.running is None and production in h.state.waiting
    assert _lane_result(h, "emulator-1").state is JobState.DONE and development in h.state.finished


def test_a_lane_run_past_its_class_runtime_limit_ends_timed_out() -> None:
    policy = parse_policy(RANDOM_POLICY.replace("rank = 2\n", "rank = 2\nmax_runtime_s = 5\n"))
    h = Harness(policy)
    job = h.submit(job_class="development", shots=10)
    h.feed(LaneDispatch("emulator-1", "s"))
    h.now += timedelta(seconds=10)
    effects = h.feed(Tick())
    assert [type(e).__name__ for e in effects] == ["StopRun"]
    h.feed(Finished(job, {"00": 3}, canceled=True))
    assert h.state.finished[job] is JobState.TIMED_OUT and h.state.lanes == {}
