"""The fuzz test's tally counts a job handled only once it ended (issue 25, point 5): an
accepted job that never ends, or a position pushed to its reply queue, does not count."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from schemas.codec import encode
from schemas.enums import JobState
from schemas.envelope import Event
from schemas.events import JobAccepted, Topic, make_event
from schemas.jobs import JobPosition, JobRequest, JobResult, Timings
from tests.support.fuzz import Tally

AT = datetime(2026, 1, 1, tzinfo=UTC)


def _job(job_id: str) -> JobRequest:
    return JobRequest(job_id=job_id, job_class="production", shots=1, sequence="{}")


def _result(job_id: str) -> JobResult:
    timings = Timings(queued_at=AT, ended_at=AT)
    return JobResult(
        job_id=job_id, state=JobState.DONE, job_class="production", shots=1, timings=timings
    )


def test_a_job_is_handled_at_its_final_event_not_at_its_acceptance() -> None:
    tally = Tally({"j"})
    accepted = make_event(Topic.JOB_ACCEPTED, JobAccepted(job=_job("j"), user="u"), job_id="j")
    tally.on_event(encode(accepted), Event.type_name())
    assert tally.missing() == {"j"}
    done = make_event(Topic.JOB_DONE, job_id="j").model_copy(update={"result": _result("j")})
    tally.on_event(encode(done), Event.type_name())
    assert tally.missing() == set() and tally.handled == {"j": "job.done"}


def test_a_final_result_reply_answers_a_job_and_a_position_push_does_not() -> None:
    tally = Tally({"j"})
    tally.on_reply(SimpleNamespace(correlation_id="j", type=JobPosition.type_name()), b"")
    assert tally.missing() == {"j"}
    result = _result("j")
    tally.on_reply(SimpleNamespace(correlation_id="j", type=result.type_name()), encode(result))
    assert tally.missing() == set()
