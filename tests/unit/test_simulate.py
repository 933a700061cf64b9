"""`qsched simulate`'s engine: recorded inputs through `step` under a policy, on a modelled QPU.

The determinism check against a real owner's log is `tests/integration/test_replay_simulate.py`;
these use hand-made logs (`tests.support.eventlogs`) to pin each part of the model.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from consumers.core.inputs import Arrival
from consumers.core.state import OwnerState
from consumers.tools.eventlog.model import build_timeline
from consumers.tools.eventlog.reader import LogRecord
from consumers.tools.simulate.cli import render
from consumers.tools.simulate.engine import SimulationError, simulate
from consumers.tools.simulate.history import Recorded, read_history
from consumers.tools.simulate.metrics import compare, measure, percentile, start_order
from schemas.envelope import Event
from schemas.events import JobAccepted, Topic, make_event
from schemas.jobs import JobRequest
from schemas.policy import Policy, parse_policy
from tests.support.eventlogs import (
    SEQUENCE,
    activated,
    at,
    control,
    final,
    queued,
    scenario,
    started,
)

A, B, C, D = (f"{n}0000000-aaaa-bbbb-cccc-000000000000" for n in "abcd")
SWAPPED = parse_policy(
    "[classes.production]\nrank = 1\n[classes.development]\nrank = 0\n[classes.calibration]\n"
    "rank = 2\ncalibrates = true\n"
)


DEFAULTS = Policy()


def _recorded(events: list[Event], policy: Policy = DEFAULTS, start: int | None = None) -> Recorded:
    return read_history([LogRecord(i, e) for i, e in enumerate(events)], policy, start, 0.2)


def _paused_backlog() -> list[Event]:
    """Paused, then three jobs, then resumed: the order is the policy's alone."""
    return [
        activated(0, 1),
        control("pause", 0.5),
        queued(A, 1, "development", "bob"),
        queued(B, 1.1, "production", "alice"),
        queued(C, 1.2, "development", "carol"),
        control("resume", 2),
        started(B, 2.01),
        final(B, 3),
        started(A, 3.01, "development", "bob"),
        final(A, 4, job_class="development"),
        started(C, 4.01, "development", "carol"),
        final(C, 5, job_class="development"),
    ]


def test_the_recorded_policy_reproduces_the_recorded_starts_and_run_times() -> None:
    events = _paused_backlog()
    recorded = _recorded(events)
    simulated = simulate(Policy(), recorded)
    assert start_order(simulated) == start_order(events) == [B, A, C]
    runs = {e.job_id: e.at for e in simulated if e.topic == Topic.JOB_STARTED}
    ends = {e.job_id: e.at for e in simulated if e.topic == Topic.JOB_DONE}
    assert abs((ends[B] - runs[B]).total_seconds() - 0.99) < 1e-6  # the recorded 0.99 s
    report = compare(recorded.events, simulated)
    assert report["start_order"]["same"]
    assert report["simulated"]["jobs"]["ended"] == {"DONE": 3}


def test_another_policy_changes_the_order_and_the_report_says_where() -> None:
    events = _paused_backlog()
    simulated = simulate(SWAPPED, _recorded(events, SWAPPED))
    assert start_order(simulated) == [A, C, B]
    report = compare(events, simulated)
    assert report["start_order"]["first_difference"] == 1  # counted from 1, as the text says
    assert "start order: differs from position 1" in list(render(report | {"policy": "p"}))
    assert (
        report["recorded"]["wait_s"]["by_class"]["production"]["p50"]
        < (report["simulated"]["wait_s"]["by_class"]["production"]["p50"])
    )


def test_a_preempting_arrival_preempts_in_the_simulation_too() -> None:
    events = scenario()
    simulated = simulate(Policy(), _recorded(events))
    topics = [(e.topic, e.job_id) for e in simulated]
    d = events[8].job_id
    b = events[2].job_id
    assert (Topic.JOB_PREEMPTED.value, b) in topics
    assert topics.index((Topic.JOB_STARTED.value, d)) > topics.index((Topic.JOB_PREEMPTED.value, b))
    assert compare(events, simulated)["simulated"]["preemptions"] == 1
    # d failed in the record, so it fails in the simulation
    assert (Topic.JOB_ERROR.value, d) in topics


def test_a_deadline_passes_while_paused_and_the_job_times_out() -> None:
    job = JobRequest(
        job_id=D,
        job_class="production",
        shots=10,
        sequence=SEQUENCE,
        submitted_at=at(1),
        deadline=at(3),
    )
    events = [
        activated(0, 1),
        control("pause", 0.5),
        make_event(
            Topic.JOB_ACCEPTED, JobAccepted(job=job, user="alice"), at=at(1), job_id=D, user="alice"
        ),
        control("resume", 10),
    ]
    simulated = simulate(Policy(), _recorded(events))
    (timed_out,) = [e for e in simulated if e.topic == Topic.JOB_TIMED_OUT]
    assert at(3) < timed_out.at < at(3) + timedelta(seconds=1)
    assert compare(events, simulated)["simulated"]["missed_deadline"] == 1


def test_from_starts_with_the_state_then_and_finishes_the_running_job() -> None:
    events = _paused_backlog()
    recorded = _recorded(events, start=7)  # B is running, A and C wait
    assert recorded.start.running is not None and recorded.start.running.job.job_id == B
    simulated = simulate(Policy(), recorded)
    assert [e.job_id for e in simulated if e.topic == Topic.JOB_DONE] == [B, A, C]


def test_a_hook_sees_each_arrival_before_step_as_the_owners_plugins_do() -> None:
    """The simulator's seam for site plugins: whatever the hook puts on an arrival counts."""
    events = _paused_backlog()
    seen: list[str] = []

    def favour_carol(arrival: Arrival, state: OwnerState, policy: Policy) -> Arrival:
        seen.append(arrival.job.job_id)
        if arrival.user != "carol":
            return arrival
        return replace(arrival, job=arrival.job.model_copy(update={"priority": 9}))

    simulated = simulate(Policy(), _recorded(events), favour_carol)
    assert seen == [A, B, C]
    assert start_order(simulated) == [B, C, A]


def test_a_state_at_from_with_a_class_the_policy_lacks_is_refused_naming_it() -> None:
    events = _paused_backlog()
    only_production = parse_policy("[classes.production]\nrank = 0\n")
    with pytest.raises(SimulationError, match=f"{A} waits at --from in class 'development'"):
        simulate(only_production, _recorded(events, only_production, start=7))
    with pytest.raises(SimulationError, match=f"{C} runs at --from in class 'development'"):
        simulate(only_production, _recorded(events, only_production, start=11))
    from_the_start = simulate(only_production, _recorded(events, only_production))
    refused = [e.job_id for e in from_the_start if e.topic == Topic.JOB_REJECTED]
    assert refused == [
        A,
        C,
    ]  # arrivals of a class it lacks are refused at intake, as the owner does


LANES = parse_policy(
    "[lanes]\nemulators = 1\n[classes.calibration]\nrank = 0\ncalibrates = true\n"
    "[classes.production]\nrank = 1\n[classes.development]\nrank = 2\n"
    'modes = ["production", "development"]\n'
    'placement = { production = "either", development = "either" }\n'
)


def _lane_log() -> list[Event]:
    """A production job 10 s on the QPU; meanwhile two development jobs 2 s each on a lane."""
    return [
        activated(0, 1),
        queued(A, 1),
        started(A, 1.01),
        queued(B, 2, "development", "bob"),
        started(B, 2.01, "development", "bob", lane="emulator-1"),
        final(B, 4.01, job_class="development"),
        queued(C, 5, "development", "carol"),
        started(C, 5.01, "development", "carol", lane="emulator-1"),
        final(C, 7.01, job_class="development"),
        final(A, 11.01),
    ]


def test_lane_runs_are_simulated_on_lanes_with_their_recorded_lane_time() -> None:
    events = _lane_log()
    recorded = _recorded(events, LANES)
    assert recorded.runs[B].lane_s_per_shot == pytest.approx(0.02)
    assert recorded.runs[B].s_per_shot is None  # lane time is not QPU time
    simulated = simulate(LANES, recorded)
    lanes = {e.job_id: e.data.get("lane") for e in simulated if e.topic == Topic.JOB_STARTED}
    assert lanes == {A: None, B: "emulator-1", C: "emulator-1"}
    timeline = build_timeline(simulated)
    assert [
        (r.job_id, (r.ended_at - r.started_at).total_seconds()) for r in timeline.lane_runs
    ] == [
        (B, pytest.approx(2.0)),
        (C, pytest.approx(2.0)),
    ]
    report = compare(recorded.events, simulated)
    assert report["start_order"]["same"]
    assert report["simulated"]["busy_s"] == report["recorded"]["busy_s"] == pytest.approx(10.0)
    assert report["simulated"]["jobs"]["ended"] == {"DONE": 3}
    # a lane run under way at --from finishes on its lane
    from_lane = simulate(LANES, _recorded(events, LANES, start=5))
    assert [e.job_id for e in from_lane if e.topic == Topic.JOB_DONE] == [B, C, A]


def test_a_log_with_lane_runs_simulated_without_lanes_runs_everything_on_the_qpu() -> None:
    events = _lane_log()
    simulated = simulate(Policy(), _recorded(events))
    assert [e.data.get("lane") for e in simulated if e.topic == Topic.JOB_STARTED] == [None] * 3
    assert start_order(simulated) == [A, B, C]
    report = compare(events, simulated)
    assert report["simulated"]["jobs"]["ended"] == {"DONE": 3}
    assert report["simulated"]["busy_s"] > report["recorded"]["busy_s"]


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1.0, 2.0, 3.0, 4.0], 0.5, 2.5),
        ([0.0, 10.0], 0.95, 9.5),
        ([5.0], 0.95, 5.0),
        ([float(v) for v in range(21)], 0.95, 19.0),
        ([3.0, 1.0, 2.0], 0.0, 1.0),
        ([3.0, 1.0, 2.0], 1.0, 3.0),
    ],
)
def test_percentiles_interpolate_between_ranks(
    values: list[float], q: float, expected: float
) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_utilisation_is_the_run_intervals_over_the_historys_own_span() -> None:
    """Given a recorded history whose QPU ran 3 of its 5 s, and a simulated one ending later,
    the recorded utilisation is 3 / 5 (as the HTML timeline reports it), not diluted by the
    other history's span."""
    events = _paused_backlog()
    own = measure(events, (events[0].at, events[-1].at))
    assert own["utilisation"] == pytest.approx(round(2.97 / 5.0, 4))
    later = [*events, control("pause", 20)]
    assert compare(events, later)["recorded"]["utilisation"] == own["utilisation"]
