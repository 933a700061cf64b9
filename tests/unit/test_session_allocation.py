"""A session belongs to its user and the Slurm allocation it names, verified against the owner's
allocation registry (issue 20, item 1): opening one naming an unknown allocation or another
user's is refused; a job of the session that names no allocation (the QRMI gateway's) is the
session's allocation's, with its account, so fair share, budgets and ``allocation-ended`` apply
to it. Pure core, driven by the harness with `register_claims` off."""

from __future__ import annotations

from datetime import timedelta

from consumers.core.commands import Command
from consumers.core.outcomes import Reply, StopRun
from consumers.core.step import Dispatch
from schemas.context import ContextSource
from schemas.control import ControlCommand, ControlReply
from schemas.enums import CommandName, ErrorCode, JobState
from schemas.events import JobAccepted, Topic, payload_of
from schemas.jobs import SlurmContext
from schemas.policy import parse_policy
from tests.unit.core_harness import T0, Harness

POLICY = parse_policy(
    'shot_rate_hz = 100\njob_overhead_s = 0\n[accounts]\ndefault = { "*" = "general" }\n'
)
END = T0 + timedelta(hours=2)


def _core() -> Harness:
    h = Harness(POLICY, register_claims=False)
    h.register("42", "alice", "chem", END)
    h.register("55", "bob", "physics")
    return h


def _open(h: Harness, user: str, allocation: str, session_id: str = "s-1") -> ControlReply:
    command = ControlCommand(
        command=CommandName.SESSION_OPEN, session_id=session_id, allocation=allocation
    )
    effects = h.feed(Command(command, user, reply_to="r"))
    reply = [e.message for e in effects if isinstance(e, Reply)][-1]
    assert isinstance(reply, ControlReply)
    return reply


def _gateway_job(h: Harness, user: str, session_id: str = "s-1") -> str:
    """A job as the QRMI gateway sends it: it names the session, no allocation."""
    return h.submit(user, session_id=session_id, opens_session=False)


def test_a_session_naming_an_unregistered_allocation_is_refused_naming_it() -> None:
    """Given no registration of allocation 77, when alice opens a session naming it, then it is
    refused (UNKNOWN_ALLOCATION, retryable, naming 77) and no session exists."""
    h = _core()
    reply = _open(h, "alice", "77")
    assert not reply.ok and reply.error is not None
    assert reply.error.code is ErrorCode.UNKNOWN_ALLOCATION and reply.error.retryable
    assert "77" in reply.error.message and reply.error.details == {"allocation": "77"}
    assert "s-1" not in h.state.sessions
    assert not [e for e in h.log if e.topic == Topic.SESSION_OPENED]


def test_a_session_naming_another_users_allocation_is_refused() -> None:
    """Given bob's allocation 55, when alice opens a session naming it, then NOT_YOUR_ALLOCATION
    naming 55, and no session exists."""
    h = _core()
    reply = _open(h, "alice", "55")
    assert not reply.ok and reply.error is not None
    assert reply.error.code is ErrorCode.NOT_YOUR_ALLOCATION and "55" in reply.error.message
    assert "s-1" not in h.state.sessions


def test_a_session_of_a_registered_allocation_takes_its_account() -> None:
    h = _core()
    reply = _open(h, "alice", "42")
    assert reply.ok, reply.message
    session = h.state.sessions["s-1"]
    assert (session.user, session.allocation, session.account) == ("alice", "42", "chem")


def test_a_gateway_job_gets_its_sessions_allocation_account_and_end() -> None:
    """Given alice's session of allocation 42 (account chem), when a job of it names no
    allocation, then it is accepted as allocation 42's, account chem, with 42's end, and no
    context mismatch is logged (before: the default account `general`, no allocation)."""
    h = _core()
    assert _open(h, "alice", "42").ok
    job = _gateway_job(h, "alice")
    (event,) = [e for e in h.log if e.job_id == job and e.topic == Topic.JOB_ACCEPTED]
    verified = payload_of(event, JobAccepted).verified
    assert verified is not None and verified.source is ContextSource.ALLOCATION
    assert (verified.allocation, verified.account, verified.allocation_end) == ("42", "chem", END)
    waiting = h.state.waiting[job]
    assert (waiting.allocation, waiting.account) == ("42", "chem")
    assert not [e for e in h.log if e.topic == Topic.JOB_CONTEXT_MISMATCH]


def test_another_users_job_naming_the_session_does_not_get_its_allocation() -> None:
    """Given alice's session of 42 (opened by her job from 42), when bob's job names it (no
    allocation), then it is bob's outside any allocation, on the default account (and the log
    says it is a stranger), not refused as a claim on alice's allocation."""
    h = _core()
    h.submit("alice", session_id="s-1", slurm=SlurmContext(job_id="42"))
    assert h.state.sessions["s-1"].allocation == "42"
    job = h.submit("bob", session_id="s-1")
    waiting = h.state.waiting[job]
    assert (waiting.allocation, waiting.account) == (None, "general")
    assert [e for e in h.log if e.topic == Topic.JOB_CONTEXT_MISMATCH and e.job_id == job]


def test_allocation_ended_cancels_the_sessions_queued_and_running_jobs() -> None:
    """Given alice's session of 42 with one job running and one queued (both sent without an
    allocation, as the gateway sends them) and a job of bob's, when 42 ends, then the queued one
    is canceled, the running one is stopped, the session ends, and bob's job stays."""
    h = _core()
    assert _open(h, "alice", "42").ok
    first, second = _gateway_job(h, "alice"), _gateway_job(h, "alice")
    h.feed(Dispatch())
    assert h.state.running is not None and h.state.running.job.job_id == first
    bobs = h.submit("bob")
    effects = h.feed(
        Command(ControlCommand(command=CommandName.ALLOCATION_ENDED, allocation="42"), "guest")
    )
    assert StopRun(first) in effects
    assert second not in h.state.waiting and bobs in h.state.waiting
    canceled = [e for e in h.log if e.topic == Topic.JOB_CANCELED and e.job_id == second]
    assert canceled and canceled[0].result is not None
    assert canceled[0].result.state is JobState.CANCELED
    assert canceled[0].result.error is not None
    assert canceled[0].result.error.code is ErrorCode.ALLOCATION_ENDED
    assert h.state.sessions["s-1"].ended_reason == "allocation_ended"
