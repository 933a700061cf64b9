"""Batches in the pure core: created and added to whole, refused whole, closed, canceled,
retried; and a snapshot keeps them."""

from __future__ import annotations

from consumers.core.batches import BatchArrival
from consumers.core.command_types import Command
from consumers.core.outcomes import Reply
from consumers.core.snapshot import from_data, to_data
from consumers.core.step import Dispatch, Finished
from schemas.batches import BatchJob, BatchRequest
from schemas.control import ControlCommand, ControlReply
from schemas.enums import CommandName, ErrorCode, JobState
from schemas.jobs import JobError, JobResult
from schemas.policy import parse_policy
from tests.unit.core_harness import SEQ, Harness

DECLARED = {"amp": ("float", 1)}


def _create(h: Harness, jobs: int, *, open: bool = False, user: str = "alice", **fields: object):
    request = BatchRequest(
        job_class="production",
        sequence=SEQ,
        jobs=[BatchJob(shots=10, variables={"amp": float(i)}) for i in range(jobs)],
        open=open,
        **fields,  # type: ignore[arg-type]
    )
    effects = h.feed(BatchArrival(request, user, "reply", digest="d", variables=DECLARED))
    return request, effects


def _add(h: Harness, batch_id: str, jobs: int, user: str = "alice") -> list[object]:
    request = BatchRequest(
        batch_id=batch_id,
        job_class="production",
        jobs=[BatchJob(shots=5, variables={"amp": 1.0}) for _ in range(jobs)],
    )
    return h.feed(BatchArrival(request, user, "reply"))


def _command(h: Harness, command: CommandName, batch_id: str, user: str = "alice") -> ControlReply:
    cmd = ControlCommand(command=command, batch_id=batch_id)
    effects = h.feed(Command(cmd, user, reply_to="r"))
    replies = [getattr(e, "reply", None) or getattr(e, "message", None) for e in effects]
    return next(r for r in replies if isinstance(r, ControlReply))


def _errors(effects: list[object]) -> list[JobError]:
    return [
        e.message.error
        for e in effects
        if isinstance(e, Reply) and isinstance(e.message, JobResult) and e.message.error
    ]


def test_a_batch_stores_its_sequence_once_and_its_jobs_carry_runs_and_variables() -> None:
    h = Harness()
    request, _ = _create(h, 3)
    created = [e for e in h.log if e.topic == "batch.created"]
    accepted = [e for e in h.log if e.topic == "job.accepted"]
    assert len(created) == 1 and created[0].data["sequence"] == SEQ
    assert len(accepted) == 3
    assert all(e.data["job"]["sequence"] == "" for e in accepted)
    assert [e.data["job"]["variables"] for e in accepted] == [
        {"amp": 0.0},
        {"amp": 1.0},
        {"amp": 2.0},
    ]
    batch = h.state.batches[request.batch_id]
    assert list(batch.jobs) == [j.job_id for j in request.jobs]
    assert {h.state.waiting[j].session_id for j in batch.jobs} == {request.batch_id}
    assert len(h.run_all()) == 3


def test_a_redelivered_batch_is_dropped_not_doubled() -> None:
    h = Harness()
    request, _ = _create(h, 2)
    before = len(h.log)
    assert h.feed(BatchArrival(request, "alice", "reply", digest="d", variables=DECLARED)) == []
    assert len(h.log) == before


def test_an_open_batch_takes_jobs_until_it_is_closed_then_refuses_naming_it() -> None:
    h = Harness()
    request, _ = _create(h, 1, open=True)
    _add(h, request.batch_id, 2)
    assert len(h.state.batches[request.batch_id].jobs) == 3
    assert _command(h, CommandName.BATCH_CLOSE, request.batch_id).ok
    errors = _errors(_add(h, request.batch_id, 1))
    assert errors and errors[0].code is ErrorCode.BATCH_CLOSED
    assert request.batch_id in errors[0].message
    assert len(h.state.batches[request.batch_id].jobs) == 3


def test_a_batch_over_a_backlog_limit_is_refused_whole_naming_the_limit() -> None:
    h = Harness(policy=parse_policy("max_waiting_per_user = 5\n"))
    _, effects = _create(h, 6)
    errors = _errors(effects)
    assert len(errors) == 7  # each job, and the batch itself
    assert errors[0].code is ErrorCode.BACKLOG_LIMIT and "user alice" in errors[0].message
    assert not h.state.waiting and not h.state.batches


def test_a_problem_the_shell_found_refuses_every_job_and_creates_nothing() -> None:
    h = Harness()
    request = BatchRequest(job_class="production", sequence=SEQ, jobs=[BatchJob(shots=1)])
    problem = JobError(code=ErrorCode.INVALID_VARIABLES, message="variables missing: amp")
    effects = h.feed(BatchArrival(request, "alice", "reply", problem=problem))
    assert [e.code for e in _errors(effects)] == [ErrorCode.INVALID_VARIABLES] * 2
    assert "missing: amp" in _errors(effects)[0].message
    assert not h.state.batches and not h.state.waiting
    assert [e.topic for e in h.log[-2:]] == ["batch.rejected", "job.rejected"]


def test_adding_to_another_users_or_an_unknown_batch_is_refused() -> None:
    h = Harness()
    request, _ = _create(h, 1, open=True)
    assert _errors(_add(h, request.batch_id, 1, user="mallory"))[0].code is ErrorCode.NOT_AUTHORISED
    assert _errors(_add(h, "nope", 1))[0].code is ErrorCode.UNKNOWN_BATCH
    assert _command(h, CommandName.BATCH_SHOW, request.batch_id, user="mallory").ok is False


def test_show_counts_cancel_stops_and_retry_reruns_failed_jobs() -> None:
    h = Harness()
    request, _ = _create(h, 3, open=True)
    ids = [j.job_id for j in request.jobs]
    h.feed(Dispatch())
    running = h.state.running
    assert running is not None
    h.feed(Finished(running.job.job_id, error=JobError(code=ErrorCode.BACKEND_ERROR, message="x")))
    shown = _command(h, CommandName.BATCH_SHOW, request.batch_id).batch
    assert shown is not None and shown.counts.get("ERROR") == 1 and shown.job_ids == ids
    assert _command(h, CommandName.BATCH_RETRY, request.batch_id).ok
    assert running.job.job_id in h.state.waiting
    reply = _command(h, CommandName.BATCH_CANCEL, request.batch_id)
    assert reply.ok and "3 queued" in reply.message
    assert all(h.state.finished[j] is JobState.CANCELED for j in ids)
    assert h.state.batches[request.batch_id].canceled


def test_a_snapshot_keeps_batches() -> None:
    h = Harness()
    request, _ = _create(h, 2, open=True)
    again = from_data(to_data(h.state), 3600.0)
    assert again.batches == h.state.batches
    assert again.batches[request.batch_id].variables == DECLARED
