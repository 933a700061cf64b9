"""`qsched show`'s record: the owner's details merged with the job's events (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from producers.jobinfo import show_lines, show_record
from schemas.details import JobDetail
from schemas.enums import ErrorCode, JobState
from schemas.envelope import Event
from schemas.events import ControlApplied, JobStarted, make_event
from schemas.jobs import JobError, JobResult, Timings

JOB = "a0000000-aaaa-bbbb-cccc-000000000000"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_finished_job_is_shown_from_its_events_with_the_commands_sent_about_it() -> None:
    accepted = Event(  # only the fields `show` reads: no full payload
        topic="job.accepted",
        job_id=JOB,
        job_class="production",
        user="alice",
        at=T0,
        data={
            "job": {"priority": 3, "shots": 100, "submitted_at": T0.isoformat()},
            "trace": {"traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"},
        },
    )
    hold = make_event(
        "control.hold", ControlApplied(ok=False, command_id="c"), job_id=JOB, user="bob", at=T0
    )
    started = make_event(
        "job.started", JobStarted(attempt=1, epoch=0, backend="s", shots=100), job_id=JOB, at=T0
    )
    result = JobResult(
        job_id=JOB,
        state=JobState.ERROR,
        job_class="production",
        shots=100,
        counts={"01": 30},
        error=JobError(code=ErrorCode.BACKEND_ERROR, message="laser"),
        timings=Timings(queued_at=T0, ended_at=T0),
    )
    ended = make_event("job.error", None, job_id=JOB, at=T0, result=result)
    record = show_record(JOB, None, [accepted, hold, started, ended])
    assert record["state"] == "ERROR" and record["user"] == "alice" and record["priority"] == 3
    assert record["trace_id"] == "ab" * 16 and record["attempt"] == 1
    assert record["shots_done"] == 30 and record["error"]["code"] == "BACKEND_ERROR"
    assert record["commands"] == [
        {"at": T0.isoformat(), "command": "hold", "by": "bob", "ok": False, "answer": None}
    ]
    lines = "\n".join(show_lines(record))
    assert "BACKEND_ERROR: laser" in lines and "hold by bob (refused)" in lines


def test_a_waiting_job_is_shown_from_the_owner_and_says_when_the_log_was_not_read() -> None:
    detail = JobDetail(
        job_id=JOB,
        state=JobState.QUEUED,
        job_class="development",
        user="alice",
        priority=0,
        shots=10,
        submitted_at=T0,
        held="held: a user hold by alice (qsched release)",
        hold_by="alice",
        hold_kind="user",
    )
    record = show_record(JOB, detail, [])
    assert record["state"] == "QUEUED" and record["hold_kind"] == "user"
    lines = show_lines(record)
    assert any("a user hold by alice" in line for line in lines)
    assert "event log was not read" in lines[-1]
