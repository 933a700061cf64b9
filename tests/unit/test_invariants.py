"""The reliability invariant checker finds each broken invariant in a crafted log."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.enums import ErrorCode, JobState
from schemas.events import JobStarted, OwnerActivated, Topic, make_event
from schemas.messages import Event, JobError, JobResult, Timings
from tests.invariants import check

AT = datetime(2026, 1, 1, tzinfo=UTC)


def ev(topic: Topic, job: str | None = None, term: int = 1) -> Event:
    payload: OwnerActivated | JobStarted | None = None
    if topic is Topic.OWNER_ACTIVATED:
        payload = OwnerActivated(term=term, backend="s")
    elif topic is Topic.JOB_STARTED:
        payload = JobStarted(attempt=1, epoch=0, backend="s", shots=1)
    return make_event(topic, payload, job_id=job).model_copy(update={"term": term})


def result(job: str, state: JobState = JobState.DONE) -> JobResult:
    return JobResult(
        job_id=job,
        state=state,
        job_class="production",
        shots=1,
        timings=Timings(queued_at=AT, ended_at=AT),
        error=None
        if state is JobState.DONE
        else JobError(code=ErrorCode.BACKEND_ERROR, message="x"),
    )


def clean() -> list[Event]:
    return [
        ev(Topic.OWNER_ACTIVATED, term=1),
        ev(Topic.JOB_ACCEPTED, "a"),
        ev(Topic.JOB_ACCEPTED, "b"),
        ev(Topic.JOB_STARTED, "a"),
        ev(Topic.OWNER_ACTIVATED, term=2),  # the owner died while a ran: its run was cut
        ev(Topic.JOB_STARTED, "a", term=2),
        ev(Topic.JOB_DONE, "a", term=2),
        ev(Topic.JOB_STARTED, "b", term=2),
        ev(Topic.JOB_RETRYING, "b", term=2),
        ev(Topic.JOB_STARTED, "b", term=2),
        ev(Topic.JOB_DONE, "b", term=2),
    ]


def test_a_clean_history_with_a_failover_and_a_retry_passes() -> None:
    verdict = check(clean(), {"a", "b"}, {"a": result("a"), "b": result("b")})
    assert verdict.ok, verdict.problems
    assert (verdict.jobs, verdict.accepted, verdict.activations) == (2, 2, 2)


@pytest.mark.parametrize(
    ("change", "figure"),
    [
        (lambda log: [e for e in log if not (e.topic == "job.done" and e.job_id == "b")], "lost"),
        (lambda log: [*log, ev(Topic.JOB_DONE, "a", term=2)], "duplicated"),
        (lambda log: [*log[:6], ev(Topic.JOB_STARTED, "b", term=2), *log[6:]], "overlaps"),
        (
            lambda log: [e for e in log if e.topic != "job.retrying"],
            "reruns_without_cut",
        ),
        (
            lambda log: (
                [e for e in log if not (e.topic == "job.done" and e.job_id == "b")]
                + [ev(Topic.JOB_DONE, "b", term=1)]
            ),
            "stale_effective",
        ),
    ],
)
def test_each_broken_invariant_is_found(change: object, figure: str) -> None:
    verdict = check(change(clean()), {"a", "b"}, {"a": result("a"), "b": result("b")})  # type: ignore[operator]
    assert not verdict.ok and getattr(verdict, figure) >= 1, verdict


def test_a_result_that_never_reached_its_submitter_or_differs_is_found() -> None:
    verdict = check(clean(), {"a", "b"}, {"a": result("a"), "b": result("b", JobState.ERROR)})
    assert verdict.not_delivered == 1
    assert check(clean(), {"a", "b"}, {"a": result("a")}).not_delivered == 1


def test_a_sent_job_missing_from_the_log_and_messages_left_in_queues_are_found() -> None:
    verdict = check(clean(), {"a", "b", "c"}, {"a": result("a"), "b": result("b")}, 2)
    assert verdict.lost == 1 and verdict.left_in_queues == 2 and len(verdict.problems) == 2
