"""The QPU timeline rebuilt from events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from consumers.tools.timeline import build_timeline, render_text
from schemas import Event, JobResult, JobState, Timings

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _result(job_id: str, state: JobState = JobState.DONE) -> JobResult:
    from schemas import ErrorCode, JobError

    error = None if state is JobState.DONE else JobError(code=ErrorCode.BACKEND_ERROR, message="x")
    return JobResult(
        job_id=job_id,
        state=state,
        job_class="production",
        shots=10,
        error=error,
        timings=Timings(queued_at=T0, ended_at=T0),
    )


def test_starts_pair_with_their_final_events_in_start_order() -> None:
    events = [
        Event(topic="job.started", job_id="b", at=T0 + timedelta(seconds=2)),
        Event(topic="job.started", job_id="a", at=T0),
        Event(topic="job.done", job_id="a", at=T0 + timedelta(seconds=1), result=_result("a")),
        Event(
            topic="job.error",
            job_id="b",
            at=T0 + timedelta(seconds=3),
            result=_result("b", JobState.ERROR),
        ),
        Event(topic="job.started", job_id="c", at=T0 + timedelta(seconds=4)),
    ]
    bars = build_timeline(events)
    assert [(b.job_id, b.state) for b in bars] == [("a", "DONE"), ("b", "ERROR"), ("c", None)]
    assert bars[1].ended_at == T0 + timedelta(seconds=3)
    text = render_text(bars, width=40)
    assert "✗" in text and "RUNNING" in text and len(text.splitlines()) == 4


def test_a_re_run_after_failover_shows_both_attempts() -> None:
    events = [
        Event(topic="job.started", job_id="a", at=T0),
        Event(topic="job.started", job_id="a", at=T0 + timedelta(seconds=5)),
        Event(topic="job.done", job_id="a", at=T0 + timedelta(seconds=6), result=_result("a")),
    ]
    bars = build_timeline(events)
    assert [(b.state, b.started_at, b.ended_at) for b in bars] == [
        ("INTERRUPTED", T0, T0 + timedelta(seconds=5)),
        ("DONE", T0 + timedelta(seconds=5), T0 + timedelta(seconds=6)),
    ]
    assert "↯" in render_text(bars)
