"""The event log folded into runs, periods, waiting counts and job histories (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from consumers.tools.eventlog.describe import event_record, job_histories, summary
from consumers.tools.eventlog.errors import BadBound
from consumers.tools.eventlog.filters import EventFilter
from consumers.tools.eventlog.model import build_timeline
from consumers.tools.eventlog.reader import parse_bound
from tests.support.eventlogs import at, scenario

A, B, C, D, E = (f"{n}0000000-aaaa-bbbb-cccc-000000000000" for n in "abcde")


def test_runs_end_done_preempted_interrupted_or_running_in_start_order() -> None:
    runs = build_timeline(scenario()).runs
    assert [(r.job_id[:1], r.state) for r in runs] == [
        ("a", "DONE"),
        ("b", "PREEMPTED"),
        ("d", "ERROR"),
        ("b", "INTERRUPTED"),
        ("b", "DONE"),
        ("e", "RUNNING"),
    ]
    preempted = runs[1]
    assert (preempted.started_at, preempted.ended_at) == (at(4.1), at(5.2))
    assert preempted.end_reason == "production preempts development"
    assert runs[3].ended_at == at(9)  # an interrupted run ends where the next owner took over
    assert runs[4].epoch == 1 and runs[4].attempt == 3 and runs[4].user == "bob"
    assert runs[4].shots == 60  # the remaining shots this run took
    assert runs[0].shots == 100 and runs[0].arrived_at == at(1)
    assert runs[5].ended_at == at(15.5)  # still running when the log ends


def test_events_of_a_stale_term_are_skipped() -> None:
    runs = build_timeline(scenario()).runs
    assert C not in {r.job_id for r in runs}  # its start came from an owner of term 1, after term 2


def test_periods_open_and_close_on_their_topics_and_refused_commands_change_nothing() -> None:
    periods = build_timeline(scenario()).periods
    assert [(p.kind, p.started_at, p.ended_at) for p in periods] == [
        ("calibration", at(6.5), at(8)),
        ("pause", at(10.5), at(11)),
        ("down", at(11.5), at(12)),
        ("maintenance", at(12.5), at(14)),
    ]
    assert periods[2].reason == "system not operational"


def test_waiting_counts_follow_arrivals_starts_preemptions_and_cancels() -> None:
    samples = {s.at: s.by_class for s in build_timeline(scenario()).waiting}
    assert samples[at(1.5)] == {"development": 1, "production": 1}
    assert samples[at(4.1)] == {"development": 1, "production": 0}  # b started, c waits
    assert samples[at(5.2)] == {"development": 2, "production": 1}  # b back, d waits
    assert samples[at(13)] == {"development": 0, "production": 0}  # c canceled while queued


def test_history_of_a_prefix_lists_every_event_of_that_job_with_trace_id_and_reasons() -> None:
    found = job_histories(scenario(), B[:8])
    assert list(found) == [B]
    history = found[B]
    assert [e.topic for e in history.entries] == [
        "job.accepted",
        "job.started",
        "job.preempting",
        "job.preempted",
        "job.started",
        "job.requeued",
        "job.started",
        "job.done",
    ]
    assert history.final_state == "DONE" and history.user == "bob"
    assert history.waited_s() == pytest.approx(2.6) and history.total_s() == pytest.approx(8.5)
    assert history.trace_id == B.replace("-", "")[:32]
    assert history.entries[3].reason == "production preempts development"
    assert history.entries[3].summary == "40/100 shots done"
    assert history.entries[2].summary == "for d0000000"
    assert history.entries[6].summary == "60 shots, attempt 3 on synthetic, epoch 1"


def test_summary_and_record_say_what_the_event_carries() -> None:
    events = scenario()
    assert summary(events[5]) == "100/100 shots, epoch 0"
    assert summary(events[11]).endswith("BACKEND_ERROR")
    record = event_record(events[1], offset=7)
    assert record["offset"] == 7 and record["topic"] == "job.accepted" and "result" not in record
    assert summary(events[1]) == "100 shots, priority 0"


def test_filter_matches_job_prefix_user_class_and_topic_glob_through_earlier_events() -> None:
    events = scenario()
    by_user = EventFilter(user="alice")
    assert {e.job_id for e in events if by_user(e)} == {A, E}  # e's progress has no user
    by_topic = EventFilter(topic="qpu.*")
    assert [e.topic for e in events if by_topic(e)] == ["qpu.down", "qpu.up"]
    by_class = EventFilter(job_class="development", topic="job.pre*")
    assert len([e for e in events if by_class(e)]) == 2
    by_job = EventFilter(job=C[:8])
    assert [e.topic for e in events if by_job(e)] == ["job.accepted", "job.started", "job.canceled"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", 42),
        ("2026-12-01T08:00:00", datetime(2026, 12, 1, 8, tzinfo=UTC)),
        ("2026-12-01T09:00:00+01:00", datetime(2026, 12, 1, 8, tzinfo=UTC)),
        (None, None),
    ],
)
def test_bounds_are_offsets_or_iso_times(text: str | None, expected: object) -> None:
    assert parse_bound(text) == expected


def test_a_bound_that_is_neither_is_refused_by_name() -> None:
    with pytest.raises(BadBound, match="yesterday"):
        parse_bound("yesterday")


def test_per_job_commands_read_in_a_history_with_their_sender() -> None:
    from schemas.events import ControlApplied, JobHeld, JobUpdated, Topic, make_event

    control = make_event(
        "control.hold",
        ControlApplied(ok=True, command_id="c1"),
        job_id=A,
        user="alice",
        reason="held",
    )
    held = make_event(Topic.JOB_HELD, JobHeld(by="ops", operator=True), job_id=A)
    updated = make_event(Topic.JOB_UPDATED, JobUpdated(by="alice", priority=2), job_id=A)
    assert summary(control) == "by alice"
    assert summary(held) == "operator hold by ops"
    assert summary(updated) == "priority 2"
    history = job_histories([control, held, updated], A[:8])[A]
    assert [e.topic for e in history.entries] == ["control.hold", "job.held", "job.updated"]
