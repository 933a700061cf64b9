"""Per-job control in the pure core: show, hold/release, update, requeue, and who may do each."""

from __future__ import annotations

from datetime import timedelta

import pytest

from consumers.core.commands import Command
from consumers.core.step import Dispatch, Finished
from schemas.control import ControlCommand, ControlReply
from schemas.enums import CommandName, ErrorCode, JobState, QPUState
from schemas.events import Topic
from schemas.policy import parse_policy
from tests.unit.core_harness import Harness

OPERATOR = "guest"  # the default policy's operator


def send(h: Harness, user: str, name: CommandName, job_id: str, **fields: object) -> ControlReply:
    """Feed one command as the shell does and return the owner's reply."""
    effects = h.feed(Command(ControlCommand(command=name, job_id=job_id, **fields), user))  # type: ignore[arg-type]
    reply = effects[-1].message  # type: ignore[attr-defined]
    assert isinstance(reply, ControlReply)
    return reply


def test_a_held_job_waits_while_the_jobs_behind_it_run_and_starts_once_released() -> None:
    h = Harness()
    first, second, third = h.submit(), h.submit(), h.submit()
    reply = send(h, "alice", CommandName.HOLD, first)
    assert reply.ok, reply.message
    assert h.run_all() == [second, third] and first in h.state.waiting
    peek = send(h, "bob", CommandName.SHOW, first)  # another user's job: no details
    assert not peek.ok and peek.job is None and peek.error is not None
    assert peek.error.code is ErrorCode.NOT_AUTHORISED
    shown = send(h, "alice", CommandName.SHOW, first).job
    assert shown is not None and shown.hold_kind == "user" and shown.hold_by == "alice"
    assert shown.held is not None and "user hold by alice" in shown.held and shown.position is None
    assert send(h, "alice", CommandName.RELEASE, first).ok
    assert h.run_all()[-1] == first and h.state.finished[first] is JobState.DONE


def test_a_submitter_cannot_release_an_operators_hold_and_a_stranger_cannot_hold() -> None:
    h = Harness()
    job = h.submit("alice")
    refused = send(h, "mallory", CommandName.HOLD, job)
    assert not refused.ok and refused.error is not None
    assert refused.error.code is ErrorCode.NOT_AUTHORISED
    assert send(h, OPERATOR, CommandName.HOLD, job).ok
    assert h.state.waiting[job].operator_hold
    assert "already held" in send(h, "alice", CommandName.HOLD, job).message
    denied = send(h, "alice", CommandName.RELEASE, job)
    assert not denied.ok and denied.error is not None
    assert denied.error.code is ErrorCode.NOT_AUTHORISED and "operator" in denied.message
    assert h.state.waiting[job].held_by == OPERATOR
    assert send(h, OPERATOR, CommandName.RELEASE, job).ok
    assert h.state.waiting[job].held_by is None


def test_an_operator_hold_replaces_a_user_hold() -> None:
    h = Harness()
    job = h.submit("alice")
    send(h, "alice", CommandName.HOLD, job)
    assert send(h, OPERATOR, CommandName.HOLD, job).ok
    assert h.state.waiting[job].operator_hold and h.state.waiting[job].held_by == OPERATOR


def test_only_waiting_jobs_are_held_updated_or_released() -> None:
    h = Harness()
    running = h.submit()
    h.feed(Dispatch())
    for name in (CommandName.HOLD, CommandName.RELEASE):
        reply = send(h, "alice", name, running)
        assert not reply.ok and reply.error is not None
        assert reply.error.code is ErrorCode.NOT_WAITING and "running" in reply.message
    h.finish_running()
    ended = send(h, "alice", CommandName.UPDATE, running, priority=0)
    assert not ended.ok and ended.error is not None and "ended DONE" in ended.message
    assert send(h, OPERATOR, CommandName.HOLD, "nope").error.code is ErrorCode.UNKNOWN_JOB  # type: ignore[union-attr]


def test_a_submitter_may_lower_its_priority_but_only_an_operator_may_raise_it() -> None:
    h = Harness()
    job = h.submit("alice", priority=5)
    raised = send(h, "alice", CommandName.UPDATE, job, priority=9)
    assert not raised.ok and raised.error is not None
    assert raised.error.code is ErrorCode.NOT_AUTHORISED and "lower" in raised.message
    assert h.state.waiting[job].priority == 5
    assert send(h, "alice", CommandName.UPDATE, job, priority=2).ok
    assert h.state.waiting[job].priority == 2
    assert send(h, OPERATOR, CommandName.UPDATE, job, priority=9).ok
    assert h.state.waiting[job].priority == 9
    assert "unchanged" in send(h, "alice", CommandName.UPDATE, job, priority=9).message


def test_raising_a_priority_moves_the_job_ahead_in_its_class() -> None:
    h = Harness()
    jobs = [h.submit("alice") for _ in range(5)]
    send(h, OPERATOR, CommandName.UPDATE, jobs[-1], priority=9)
    assert h.run_all()[0] == jobs[-1]


def test_a_class_change_follows_the_class_acl_for_submitters_not_for_operators() -> None:
    policy = parse_policy(
        "[classes.production]\nrank = 1\n"
        '[classes.vip]\nrank = 0\nsubmitters = ["carol"]\nmax_shots = 500\n'
        "[classes.development]\nrank = 2\n"
    )
    h = Harness(policy)
    job = h.submit("alice", job_class="development", shots=100)
    denied = send(h, "alice", CommandName.UPDATE, job, job_class="vip")
    assert not denied.ok and denied.error is not None
    assert denied.error.code is ErrorCode.NOT_AUTHORISED
    unknown = send(h, "alice", CommandName.UPDATE, job, job_class="nope")
    assert unknown.error is not None and unknown.error.code is ErrorCode.UNKNOWN_JOB_CLASS
    assert send(h, "alice", CommandName.UPDATE, job, job_class="production").ok
    assert h.state.waiting[job].job_class == "production"
    assert h.state.index.per_class["production"] == 1
    assert h.state.index.per_class["development"] == 0
    assert send(h, OPERATOR, CommandName.UPDATE, job, job_class="vip").ok
    assert h.state.waiting[job].job_class == "vip"
    big = h.submit("alice", job_class="development", shots=1000)
    too_many = send(h, OPERATOR, CommandName.UPDATE, big, job_class="vip")
    assert too_many.error is not None and too_many.error.code is ErrorCode.TOO_MANY_SHOTS


def test_a_class_change_respects_the_target_class_backlog_limit_for_submitters() -> None:
    policy = parse_policy(
        "[classes.production]\nrank = 1\nmax_waiting = 1\n[classes.development]\nrank = 2\n"
    )
    h = Harness(policy)
    h.submit("bob", job_class="production")
    job = h.submit("alice", job_class="development")
    full = send(h, "alice", CommandName.UPDATE, job, job_class="production")
    assert full.error is not None and full.error.code is ErrorCode.BACKLOG_LIMIT


def test_requeue_stops_the_running_job_which_then_runs_all_its_shots_again() -> None:
    h = Harness()
    job = h.submit("alice", shots=100)
    h.feed(Dispatch())
    h.now += timedelta(seconds=1)
    reply = send(h, "alice", CommandName.REQUEUE, job)
    assert reply.ok, reply.message
    assert h.state.qpu is QPUState.PREEMPTING and h.state.running is not None
    again = send(h, "alice", CommandName.REQUEUE, job)
    assert not again.ok and "already being stopped" in again.message
    h.feed(Finished(job, {"0": 40}, canceled=True))  # the backend stopped after 40 shots
    waiting = h.state.waiting[job]
    assert waiting.prior_counts == {} and waiting.remaining_shots == 100
    assert waiting.attempt == 2 and waiting.preemptions == 0
    requeued = [e for e in h.log if e.topic == Topic.JOB_REQUEUED]
    assert requeued and "40 measured shots dropped" in (requeued[-1].reason or "")
    assert h.run_all() == [job, job] and h.state.finished[job] is JobState.DONE
    done = send(h, "alice", CommandName.REQUEUE, job)
    assert not done.ok and "submit it again" in done.message


@pytest.mark.parametrize("name", [CommandName.HOLD, CommandName.UPDATE, CommandName.REQUEUE])
def test_every_per_job_command_is_logged_with_its_sender_and_job(name: CommandName) -> None:
    h = Harness()
    job = h.submit("alice", priority=3)
    if name is CommandName.REQUEUE:
        h.feed(Dispatch())
    fields = {"priority": 1} if name is CommandName.UPDATE else {}
    send(h, "alice", name, job, **fields)
    control = [e for e in h.log if e.topic == f"control.{name.value}"]
    assert len(control) == 1 and control[0].user == "alice" and control[0].job_id == job
    assert control[0].data["ok"] is True


def test_show_details_a_running_job_with_its_shots_and_a_finished_one_is_refused() -> None:
    h = Harness()
    job = h.submit("alice", shots=100)
    h.feed(Dispatch())
    shown = send(h, "alice", CommandName.SHOW, job)
    assert shown.ok and shown.job is not None
    assert shown.job.state is JobState.RUNNING and shown.job.position == 0
    assert shown.job.started_at is not None and shown.job.attempt == 1
    h.finish_running()
    gone = send(h, "alice", CommandName.SHOW, job)
    assert gone.ok and gone.job is None and "already ended DONE" in gone.message
    assert not [e for e in h.log if e.topic == "control.show"]  # looking leaves no trace
    unknown = send(h, "bob", CommandName.SHOW, "nope")
    assert not unknown.ok and unknown.error is not None
    assert unknown.error.code is ErrorCode.UNKNOWN_JOB


def test_status_carries_the_standbys_the_shell_heard_and_the_roster_forgets_silent_ones() -> None:
    from datetime import UTC, datetime

    from consumers.owner.standbys import STALE_AFTER_S, Roster
    from schemas.messages import OwnerHeartbeat

    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    roster = Roster(clock=lambda: now[0])
    roster.heard(OwnerHeartbeat(owner_id="b", host="node2", pid=7))
    now[0] += timedelta(seconds=STALE_AFTER_S / 2)
    roster.heard(OwnerHeartbeat(owner_id="a", host="node1", pid=8))
    assert [s.owner_id for s in roster.current()] == ["a", "b"]
    now[0] += timedelta(seconds=STALE_AFTER_S * 0.75)
    (only,) = roster.current()  # b fell silent
    assert only.owner_id == "a" and only.host == "node1"
    h = Harness()
    effects = h.feed(Command(ControlCommand(command=CommandName.STATUS), "bob", standbys=(only,)))
    status = effects[-1].message.status  # type: ignore[attr-defined]
    assert status.standbys == [only]


def test_a_job_that_ended_error_waits_again_from_its_logged_request_and_others_do_not() -> None:
    from schemas.events import JobAccepted, payload_of
    from schemas.jobs import JobError

    h = Harness()
    job = h.submit("alice", shots=100)
    h.feed(Dispatch())
    h.feed(Finished(job, {"0": 10}, error=JobError(code=ErrorCode.BACKEND_ERROR, message="laser")))
    assert h.state.finished[job] is JobState.ERROR
    unknown = send(h, "alice", CommandName.REQUEUE, job)  # the shell found no record
    assert not unknown.ok and "submit it again" in unknown.message
    logged = next(e for e in h.log if e.topic == Topic.JOB_ACCEPTED and e.job_id == job)
    request = payload_of(logged, JobAccepted).model_copy(update={"attempt": 2})
    given = Command(
        ControlCommand(command=CommandName.REQUEUE, job_id=job), "bob", resubmit=request
    )
    assert h.feed(given)[-1].message.error.code is ErrorCode.NOT_AUTHORISED  # type: ignore[attr-defined]
    given = Command(
        ControlCommand(command=CommandName.REQUEUE, job_id=job), "alice", resubmit=request
    )
    reply = h.feed(given)[-1].message  # type: ignore[attr-defined]
    assert reply.ok, reply.message
    waiting = h.state.waiting[job]
    assert waiting.attempt == 2 and waiting.remaining_shots == 100 and job not in h.state.finished
    assert h.run_all() == [job, job] and h.state.finished[job] is JobState.DONE
    again = send(h, "alice", CommandName.REQUEUE, job)
    assert not again.ok and "ended DONE" in again.message  # only ERROR jobs come back
