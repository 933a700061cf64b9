"""`qsched events replay`'s fold: the owner's `apply` over log records, reported at two bounds."""

from __future__ import annotations

from consumers.core.snapshot import to_data
from consumers.core.state import OwnerState
from consumers.tools.eventlog.reader import LogRecord
from consumers.tools.eventlog.replay import render, replay
from schemas.envelope import Event
from schemas.events import Snapshot, Topic, make_event
from schemas.policy import Policy
from tests.support.eventlogs import at, scenario


def _records(events: list[Event], first: int = 0) -> list[LogRecord]:
    return [LogRecord(first + i, e) for i, e in enumerate(events)]


def test_state_at_the_end_is_the_owners_apply_over_the_whole_log() -> None:
    """Given the scenario log, the 'to' report says what `OwnerState.apply` says of it."""
    events = scenario()
    expected = OwnerState()
    for event in events:
        expected.apply(event)
    (point,) = replay(_records(events), Policy())
    report = point.report
    assert point.label == "to"
    assert report["qpu"] == expected.qpu.value == "RUNNING"
    assert report["running"]["job_id"] == events[-2].job_id
    assert report["ended"] == {"CANCELED": 1, "DONE": 2, "ERROR": 1}
    assert report["events"] == expected.events and report["ignored"] == expected.ignored
    assert report["offset"] == len(events) - 1
    assert report["waiting"] == 0
    assert report["usage_s"]["users"]["/bob"] > 0  # bob's development job ran twice
    assert "running" in render(point)


def test_from_reports_the_state_just_before_the_bound_with_jobs_in_policy_order() -> None:
    """Given an offset bound inside the scenario, 'from' is the fold of the records before it."""
    events = scenario()
    # offset 5 is a's final event: a still runs, b and c wait (b development from bob, c too)
    points = replay(_records(events), Policy(), start=5, jobs=True)
    first, last = points
    assert first.label == "from" and last.label == "to"
    assert first.report["offset"] == 4
    assert first.report["running"]["job_id"] == events[1].job_id
    assert first.report["waiting_by_class"] == {"development": 2}
    assert [j["job_id"] for j in first.report["jobs"]] == [events[2].job_id, events[4].job_id]
    by_time = replay(_records(events), Policy(), start=at(4))[0].report
    by_offset = replay(_records(events), Policy(), start=5)[0].report
    assert by_time["at"] == at(4).isoformat()  # the moment asked for, not the last event's
    assert by_time | {"at": None} == by_offset | {"at": None}


def test_a_log_whose_start_was_removed_folds_from_its_first_snapshot() -> None:
    """Given a log cut by retention (first offset > 0), the fold starts at the first snapshot
    and reaches the same state as the whole log."""
    events = scenario()
    whole = OwnerState()
    for event in events[:10]:
        whole.apply(event)
    snapshot = make_event(Topic.OWNER_SNAPSHOT, Snapshot(state=to_data(whole)), at=at(5.25))
    tail = [events[8], events[9], snapshot, *events[10:]]  # two records before the snapshot
    (point,) = replay(_records(tail, first=500), Policy())
    (reference,) = replay(_records(events), Policy())
    assert point.report["skipped"] == 2
    for key in ("qpu", "running", "ended", "waiting", "epoch", "term"):
        assert point.report[key] == reference.report[key], key
