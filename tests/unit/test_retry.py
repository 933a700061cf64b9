"""The retry budget of the pure core: a run that fails retryably waits, then runs again, until
the policy's `retry.attempts` is spent; the result counts the runs (`attempts`)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from consumers.core.snapshot import from_data, to_data
from consumers.core.step import Dispatch, Finished, Tick
from consumers.tools.eventlog.model import build_timeline
from schemas.enums import ErrorCode, JobState
from schemas.events import Topic
from schemas.jobs import JobError
from schemas.policy import RetryPolicy, parse_policy
from tests.unit.core_harness import Harness

POLICY = parse_policy(
    "shot_rate_hz = 100\njob_overhead_s = 0\n[retry]\nattempts = 3\nbackoff_s = 5\n"
    "max_backoff_s = 8\n"
)
FLAKY = JobError(code=ErrorCode.BACKEND_UNAVAILABLE, message="503 x4", retryable=True)
BROKEN = JobError(code=ErrorCode.BACKEND_ERROR, message="400 bad sequence", retryable=False)


def _fail_running(
    h: Harness, error: JobError, counts: dict[str, int] | None = None
) -> list[object]:
    run = h.state.running
    assert run is not None
    h.now += timedelta(seconds=1)
    return h.feed(Finished(run.job.job_id, counts or {}, error=error))


@pytest.mark.parametrize(
    ("failures", "wait_s"), [(1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0), (5, 30.0), (9, 30.0)]
)
def test_backoff_doubles_from_backoff_s_up_to_its_cap(failures: int, wait_s: float) -> None:
    assert RetryPolicy(backoff_s=2, max_backoff_s=30).backoff_after(failures) == wait_s


def test_a_retryable_failure_waits_out_its_backoff_then_runs_again_and_counts_two_attempts() -> (
    None
):
    h = Harness(POLICY)
    job = h.submit(shots=100)
    h.feed(Dispatch())
    effects = _fail_running(h, FLAKY, {"01": 30})
    assert effects == []  # no reply: the job is not over
    retrying = [e for e in h.log if e.topic == Topic.JOB_RETRYING]
    assert len(retrying) == 1 and "run 2 in 5 s" in (retrying[0].reason or "")
    waiting = h.state.waiting[job]
    assert waiting.failures == 1 and waiting.prior_counts == {"01": 30}
    h.feed(Dispatch())
    assert h.state.running is None, "started before its backoff ran out"
    h.now += timedelta(seconds=4.9)
    h.feed(Tick())
    h.feed(Dispatch())
    assert h.state.running is None
    h.now += timedelta(seconds=0.2)
    effects = h.feed(Dispatch())
    assert effects[0].shots == 70 and effects[0].attempt == 2  # type: ignore[attr-defined]
    h.finish_running()
    (done,) = [e for e in h.log if e.topic == Topic.JOB_DONE]
    assert done.result is not None and done.result.attempts == 2
    assert sum(done.result.counts.values()) == 100


def test_the_budget_spent_the_job_ends_error_with_every_attempt_counted() -> None:
    h = Harness(POLICY)
    job = h.submit()
    for _ in range(3):
        h.now += timedelta(seconds=10)  # past any backoff
        h.feed(Dispatch())
        effects = _fail_running(h, FLAKY)
    assert job in h.state.finished and h.state.finished[job] is JobState.ERROR
    result = effects[0].message  # type: ignore[attr-defined]
    assert result.state is JobState.ERROR and result.attempts == 3
    assert result.error.code is ErrorCode.BACKEND_UNAVAILABLE and result.error.retryable
    assert [e.topic for e in h.log].count(Topic.JOB_RETRYING) == 2


def test_a_final_error_is_never_retried() -> None:
    h = Harness(POLICY)
    job = h.submit()
    h.feed(Dispatch())
    _fail_running(h, BROKEN)
    assert h.state.finished[job] is JobState.ERROR
    assert not [e for e in h.log if e.topic == Topic.JOB_RETRYING]


def test_a_waiting_retry_survives_a_snapshot_and_a_failover() -> None:
    h = Harness(POLICY)
    job = h.submit()
    h.feed(Dispatch())
    _fail_running(h, FLAKY)
    restored = from_data(to_data(h.state), POLICY.fair_share_half_life_s)
    assert restored.waiting[job] == h.state.waiting[job]
    h.activate()  # a new owner keeps the hold and the count
    assert h.state.waiting[job].failures == 1 and h.state.waiting[job].not_before is not None
    h.feed(Dispatch())
    assert h.state.running is None


def test_the_timeline_shows_the_failed_run_as_error_and_the_retry_as_a_new_run() -> None:
    h = Harness(POLICY)
    h.submit(shots=100)
    h.feed(Dispatch())
    _fail_running(h, FLAKY, {"01": 30})
    h.now += timedelta(seconds=10)
    h.feed(Dispatch())
    h.finish_running()
    runs = build_timeline(h.log).runs
    assert [(r.state, r.attempt) for r in runs] == [("ERROR", 1), ("DONE", 2)]
