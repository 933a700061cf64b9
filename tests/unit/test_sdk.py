"""The submitter SDK's public surface and its concurrent.futures-like waiting (no broker).

`wait`/`as_completed` are driven here by a scripted stand-in for the client's reply inbox (each
`poll` delivers the next scripted result); tests/integration/test_sdk.py runs them on a real owner.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import producers
from producers import (
    FIRST_COMPLETED,
    FIRST_EXCEPTION,
    JobHandle,
    ResultTimeout,
    as_completed,
    wait,
)
from schemas.enums import ErrorCode, JobState
from schemas.jobs import JobError, JobResult, Timings
from schemas.wire import utc_now


class ScriptedClient:
    """Delivers one scripted result per `poll`, like results arriving on a reply queue."""

    def __init__(self, script: list[JobResult]) -> None:
        self.script = list(script)
        self.results: dict[str, JobResult] = {}
        self.polls = 0

    def poll(self, timeout: float) -> None:
        self.polls += 1
        if self.script:
            result = self.script.pop(0)
            self.results[result.job_id] = result


def result(job_id: str, state: JobState = JobState.DONE) -> JobResult:
    now = utc_now()
    error = None if state is JobState.DONE else JobError(code=ErrorCode.INTERNAL, message="boom")
    return JobResult(
        job_id=job_id,
        state=state,
        job_class="production",
        shots=1,
        error=error,
        timings=Timings(queued_at=now, ended_at=now),
    )


def handles(client: Any, *ids: str) -> list[JobHandle]:
    return [JobHandle(i, "production", 1, client) for i in ids]


def test_every_public_name_resolves_and_callables_have_docstrings() -> None:
    for name in producers.__all__:
        value = getattr(producers, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"producers.{name} has no docstring"
    assert {"QPUClient", "JobHandle", "as_completed", "wait", "QSchedConnection"} <= set(
        producers.__all__
    )
    with pytest.raises(AttributeError):
        producers.NoSuchName  # noqa: B018


def test_handles_are_equal_and_hash_by_job_id() -> None:
    """Given two handles of one job id (different views), they are one key in sets and dicts."""
    a = JobHandle("job-1", "production", 10, ScriptedClient([]))  # type: ignore[arg-type]
    b = JobHandle("job-1", "development", 99, ScriptedClient([]))  # type: ignore[arg-type]
    c = JobHandle("job-2", "production", 10, a.client)
    assert a == b and hash(a) == hash(b) and a != c
    assert len({a, b, c}) == 2
    assert {a: "first"}[b] == "first"
    assert a != "job-1"


def test_as_completed_yields_in_arrival_order_not_submission_order() -> None:
    client = ScriptedClient([result("c"), result("a"), result("b")])
    order = [h.job_id for h in as_completed(handles(client, "a", "b", "c"))]
    assert order == ["c", "a", "b"]


def test_as_completed_yields_a_finished_handle_at_once_and_duplicates_once() -> None:
    client = ScriptedClient([])
    client.results["a"] = result("a")
    a, b = handles(client, "a", "b")
    iterator = as_completed([a, a, b], timeout=0.05)
    assert next(iterator) is a
    with pytest.raises(ResultTimeout, match="1 of the jobs"):
        next(iterator)


def test_wait_first_completed_returns_after_the_first_result() -> None:
    client = ScriptedClient([result("b"), result("a")])
    a, b = handles(client, "a", "b")
    done, not_done = wait([a, b], return_when=FIRST_COMPLETED)
    assert done == {b} and not_done == {a}
    done, not_done = wait([a, b])
    assert done == {a, b} and not_done == set()


def test_wait_first_exception_returns_at_the_first_failed_result() -> None:
    client = ScriptedClient([result("a"), result("b", JobState.ERROR), result("c")])
    a, b, c = handles(client, "a", "b", "c")
    done, not_done = wait([a, b, c], return_when=FIRST_EXCEPTION)
    assert done == {a, b} and not_done == {c}


def test_wait_returns_the_unfinished_on_timeout_without_raising() -> None:
    client = ScriptedClient([])
    (a,) = handles(client, "a")
    done, not_done = wait([a], timeout=0.05)
    assert done == set() and not_done == {a} and client.polls >= 1
    with pytest.raises(ValueError, match="return_when"):
        wait([a], return_when="WHENEVER")  # type: ignore[arg-type]


def test_handles_of_several_clients_are_all_read() -> None:
    first, second = ScriptedClient([result("a")]), ScriptedClient([result("b")])
    (a,), (b,) = handles(first, "a"), handles(second, "b")
    assert {h.job_id for h in as_completed([a, b], timeout=5)} == {"a", "b"}


def test_the_python_api_defaults_to_the_development_class_like_the_cli_and_readme() -> None:
    """Given a job that names no class, the SDK, the MPI helper and the Pulser connection send it
    as `development`, as `qsched submit` does and the README says (production may preempt it)."""
    from producers import JobSpec, QPUClient, QSchedConnection
    from producers.cli import submit

    for call in (QPUClient.submit, QPUClient.build_job, QSchedConnection.__init__):
        assert inspect.signature(call).parameters["job_class"].default == "development", call
    assert JobSpec("{}", 1).job_class == "development"
    cli_default = next(p.default for p in submit.params if p.name == "job_class")
    assert cli_default == "development"
