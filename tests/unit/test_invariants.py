"""The reliability invariant checker finds each broken invariant in a crafted log."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.enums import ErrorCode, JobState
from schemas.envelope import Event
from schemas.events import (
    CalibrationComplete,
    JobAccepted,
    JobStarted,
    OwnerActivated,
    Topic,
    make_event,
)
from schemas.jobs import JobError, JobRequest, JobResult, Timings
from tests.support.invariants import check

AT = datetime(2026, 1, 1, tzinfo=UTC)


def ev(topic: Topic, job: str | None = None, term: int = 1, lane: str | None = None) -> Event:
    payload: OwnerActivated | JobStarted | None = None
    if topic is Topic.OWNER_ACTIVATED:
        payload = OwnerActivated(term=term, backend="s")
    elif topic is Topic.JOB_STARTED:
        payload = JobStarted(attempt=1, epoch=0, backend="s", shots=1, lane=lane)
    data = payload.model_dump(mode="json") if payload is not None else {}
    return Event(topic=topic, data=data, job_id=job, term=term)  # payloads left out on purpose


def accepted(job: str, min_epoch: int | None = None, term: int = 1) -> Event:
    request = JobRequest(job_id=job, job_class="production", shots=1, sequence="{}")
    request = request.model_copy(update={"min_epoch": min_epoch})
    payload = JobAccepted(job=request, user="alice")
    return make_event(Topic.JOB_ACCEPTED, payload, job_id=job).model_copy(update={"term": term})


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
        accepted("a"),
        accepted("b"),
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


def split_brain() -> list[Event]:
    """act(1) acc a,b act(2) start a@2 start b@1 done b@1 done a@2 start b@2 done b@2: the
    owner of term 1, superseded, runs b while the owner of term 2 runs a (issue 25, finding 1)."""
    return [
        ev(Topic.OWNER_ACTIVATED, term=1),
        accepted("a"),
        accepted("b"),
        ev(Topic.OWNER_ACTIVATED, term=2),
        ev(Topic.JOB_STARTED, "a", term=2),
        ev(Topic.JOB_STARTED, "b", term=1),
        ev(Topic.JOB_DONE, "b", term=1),
        ev(Topic.JOB_DONE, "a", term=2),
        ev(Topic.JOB_STARTED, "b", term=2),
        ev(Topic.JOB_DONE, "b", term=2),
    ]


def test_a_superseded_owner_running_a_job_beside_the_current_one_fails_the_checker() -> None:
    verdict = check(split_brain(), {"a", "b"}, {"a": result("a"), "b": result("b")})
    assert not verdict.ok
    assert (verdict.stale_starts, verdict.overlaps, verdict.reruns_without_cut) == (1, 1, 1)
    assert any("b started by a superseded owner (term 1 < 2)" in p for p in verdict.problems)


def test_a_stale_start_while_nothing_runs_is_still_a_problem() -> None:
    log = [*clean(), ev(Topic.JOB_STARTED, "b", term=1)]
    verdict = check(log, {"a", "b"}, {"a": result("a"), "b": result("b")})
    assert verdict.stale_starts == 1 and verdict.overlaps == 0 and not verdict.ok


def test_stale_events_other_than_starts_change_nothing_and_pass() -> None:
    log = [*clean(), ev(Topic.JOB_PROGRESS, "a", term=1), ev(Topic.QPU_DOWN, term=1)]
    verdict = check(log, {"a", "b"}, {"a": result("a"), "b": result("b")})
    assert verdict.ok, verdict.problems
    assert verdict.stale_events == 2


@pytest.mark.parametrize(
    ("events", "sent", "says"),
    [
        ([], set(), "no job was sent"),
        ([ev(Topic.OWNER_ACTIVATED, term=1)], set(), "no job was sent"),
        ([ev(Topic.OWNER_ACTIVATED, term=1)], {"a"}, "no job was accepted"),
    ],
)
def test_an_empty_history_fails_the_checker(events: list[Event], sent: set[str], says: str) -> None:
    verdict = check(events, sent, {})
    assert not verdict.ok and any(says in p for p in verdict.problems), verdict.problems


def test_a_job_started_before_its_epoch_is_found_and_one_after_its_calibration_passes() -> None:
    early = [ev(Topic.OWNER_ACTIVATED), accepted("a", min_epoch=1), ev(Topic.JOB_STARTED, "a")]
    early.append(ev(Topic.JOB_DONE, "a"))
    verdict = check(early, {"a"}, None)
    assert verdict.before_epoch == 1 and not verdict.ok
    complete = make_event(Topic.CALIBRATION_COMPLETE, CalibrationComplete(epoch=1))
    later = [*early[:2], complete.model_copy(update={"term": 1}), *early[2:]]
    assert check(later, {"a"}, None).ok


def test_lanes_run_beside_the_qpu_but_one_job_at_a_time_each() -> None:
    log = [
        ev(Topic.OWNER_ACTIVATED),
        accepted("a"),
        accepted("b"),
        ev(Topic.JOB_STARTED, "a"),
        ev(Topic.JOB_STARTED, "b", lane="emu-1"),
        ev(Topic.JOB_DONE, "b"),
        ev(Topic.JOB_DONE, "a"),
    ]
    assert check(log, {"a", "b"}, None).ok
    crowded = [*log[:5], accepted("c"), ev(Topic.JOB_STARTED, "c", lane="emu-1"), *log[5:]]
    verdict = check(crowded, {"a", "b"}, None)
    assert verdict.overlaps == 1 and "emu-1" in verdict.problems[0]


def test_without_submitters_the_verdict_says_delivery_was_not_checked() -> None:
    verdict = check(clean(), {"a", "b"}, None)
    assert verdict.ok and not verdict.delivery_checked
