"""Sessions in the pure core: open, close, cancel, limits, implicit opening, allocation end."""

from __future__ import annotations

from datetime import timedelta

from consumers.core.commands import Command
from consumers.core.outcomes import Reply
from consumers.core.snapshot import from_data, to_data
from consumers.core.step import Dispatch, Tick
from schemas.control import ControlCommand, ControlReply
from schemas.enums import CommandName, ErrorCode, JobState
from schemas.events import Topic
from schemas.jobs import JobResult, SlurmContext
from schemas.policy import parse_policy
from tests.unit.core_harness import Harness

POLICY = parse_policy(
    "shot_rate_hz = 100\njob_overhead_s = 0\n"
    "[sessions]\nmax_time_s = 600\nmax_time_cap_s = 900\nidle_timeout_s = 60\n"
)


def _ask(h: Harness, user: str, **fields: object) -> ControlReply:
    effects = h.feed(Command(ControlCommand(**fields), user, reply_to="r"))  # type: ignore[arg-type]
    reply = [e.message for e in effects if isinstance(e, Reply)][-1]
    assert isinstance(reply, ControlReply)
    return reply


def _open(h: Harness, user: str = "alice", **fields: object) -> str:
    reply = _ask(h, user, command=CommandName.SESSION_OPEN, session_id="s-1", **fields)
    assert reply.ok, reply.message
    return "s-1"


def _rejection(h: Harness, job_id: str) -> JobResult:
    found = [e.result for e in h.log if e.topic == Topic.JOB_REJECTED and e.result is not None]
    return next(r for r in found if r.job_id == job_id)


def test_an_opened_session_takes_its_users_jobs_and_refuses_them_once_closed() -> None:
    """Given an open session, then its user's jobs join it; once closed, a new one is refused
    (SESSION_ENDED, nothing created) while the queued one stays."""
    h = Harness(POLICY)
    session = _open(h, max_time_s=10_000)
    assert h.state.sessions[session].max_time_s == 900  # capped by the policy
    queued = h.submit(session_id=session)
    assert _ask(h, "alice", command=CommandName.SESSION_CLOSE, session_id=session).ok
    late = h.submit(session_id=session)
    assert _rejection(h, late).error.code is ErrorCode.SESSION_ENDED  # type: ignore[union-attr]
    assert late not in h.state.owners or h.state.finished[late] is JobState.REJECTED
    assert queued in h.state.waiting
    assert h.state.sessions[session].ended_reason == "closed"


def test_another_users_job_naming_an_explicit_session_is_refused() -> None:
    """Given alice's explicit session, when bob names it, then his job is refused."""
    h = Harness(POLICY)
    session = _open(h)
    job = h.submit(user="bob", session_id=session)
    assert _rejection(h, job).error.code is ErrorCode.NOT_YOUR_SESSION  # type: ignore[union-attr]
    refused = _ask(h, "bob", command=CommandName.SESSION_CLOSE, session_id=session)
    assert not refused.ok and h.state.sessions[session].is_open


def test_cancel_cancels_the_queued_jobs_of_the_session_only() -> None:
    """Given two queued jobs of a session and one outside it, when the session is canceled,
    then only the session's jobs end CANCELED."""
    h = Harness(POLICY)
    session = _open(h)
    mine = [h.submit(session_id=session), h.submit(session_id=session)]
    other = h.submit()
    reply = _ask(h, "alice", command=CommandName.SESSION_CANCEL, session_id=session)
    assert reply.ok and "2 queued" in reply.message
    assert all(h.state.finished[j] is JobState.CANCELED for j in mine)
    assert other in h.state.waiting


def test_a_job_naming_an_unknown_session_opens_one_for_its_user_and_allocation() -> None:
    """Given no session, when a job names one, then an implicit session of its user opens."""
    h = Harness(POLICY)
    h.submit(session_id="loop-7", slurm=SlurmContext(job_id="42"))
    session = h.state.sessions["loop-7"]
    assert (session.user, session.allocation, session.explicit) == ("alice", "42", False)


def test_idle_and_too_long_sessions_end_on_a_tick() -> None:
    """Given two sessions, when one sits idle past its timeout and the other past its length
    while busy, then both end with their reasons."""
    h = Harness(POLICY)
    _open(h)
    _ask(h, "bob", command=CommandName.SESSION_OPEN, session_id="s-2", max_time_s=120)
    h.submit(user="bob", session_id="s-2")
    h.now += timedelta(seconds=61)
    h.feed(Tick())
    assert h.state.sessions["s-1"].ended_reason == "idle"
    assert h.state.sessions["s-2"].is_open  # busy: a job of it waits
    h.now += timedelta(seconds=60)
    h.feed(Tick())
    assert h.state.sessions["s-2"].ended_reason == "max_time"


def test_sessions_end_with_their_allocation_and_survive_a_snapshot() -> None:
    """Given a session of allocation 42, when 42 ends, then the session ends; a snapshot of
    the state restores it as it was."""
    h = Harness(POLICY)
    h.register("42", "alice")
    _open(h, allocation="42")
    _ask(h, "guest", command=CommandName.ALLOCATION_ENDED, allocation="42")
    assert h.state.sessions["s-1"].ended_reason == "allocation_ended"
    restored = from_data(to_data(h.state), POLICY.fair_share_half_life_s)
    assert restored.sessions == h.state.sessions
    refused = _ask(h, "alice", command=CommandName.SESSION_OPEN, session_id="s-9", allocation="42")
    assert not refused.ok and refused.error is not None
    assert refused.error.code is ErrorCode.ALLOCATION_ENDED


EXCLUSIVE = parse_policy(
    "shot_rate_hz = 100\njob_overhead_s = 0\nsession_grace_s = 30\n"
    "[classes.production]\nrank = 1\nexclusive_sessions_s = 5\n"
    "[classes.calibration]\nrank = 0\ncalibrates = true\n"
)


def test_an_exclusive_session_holds_the_qpu_for_its_next_job_within_the_bound() -> None:
    """Given a session of an exclusive class whose job just ended and bob's job waiting, then
    the QPU waits for the session's next job; it starts first when it comes; once the bound
    passes without one, bob's job starts."""
    h = Harness(EXCLUSIVE)
    _ask(h, "alice", command=CommandName.SESSION_OPEN, session_id="s-1", job_class="production")
    first = h.submit(session_id="s-1")
    h.feed(Dispatch())
    bob = h.submit(user="bob")
    assert h.finish_running() == first
    h.feed(Dispatch())
    assert h.state.running is None  # held for alice's next iteration
    h.now += timedelta(seconds=2)
    second = h.submit(session_id="s-1")
    h.feed(Dispatch())
    assert h.state.running is not None and h.state.running.job.job_id == second
    h.finish_running()
    h.now += timedelta(seconds=5)  # the bound passes with no next job
    h.feed(Dispatch())
    assert h.state.running is not None and h.state.running.job.job_id == bob


def test_exclusivity_never_holds_a_class_of_higher_rank() -> None:
    """Given an exclusive session between iterations, then a calibration job starts at once."""
    h = Harness(EXCLUSIVE)
    _ask(h, "alice", command=CommandName.SESSION_OPEN, session_id="s-1", job_class="production")
    h.submit(session_id="s-1")
    h.feed(Dispatch())
    h.finish_running()
    calibration = h.submit(user="ops", job_class="calibration")
    h.feed(Dispatch())
    assert h.state.running is not None and h.state.running.job.job_id == calibration


def test_open_sessions_show_in_status_each_user_seeing_their_own() -> None:
    """Given sessions of alice and bob, then status lists both for an operator and only
    alice's for her; an ended session is not listed."""
    from consumers.core.privacy import private_status
    from consumers.core.view import status_of

    h = Harness(POLICY)
    _open(h)
    _ask(h, "bob", command=CommandName.SESSION_OPEN, session_id="s-2")
    _ask(h, "carol", command=CommandName.SESSION_OPEN, session_id="s-3")
    _ask(h, "carol", command=CommandName.SESSION_CLOSE, session_id="s-3")
    status = status_of(h.state, POLICY, h.now, "owner-1", "synthetic")
    assert sorted(s.session_id for s in status.sessions) == ["s-1", "s-2"]
    mine = private_status(status, "alice", h.state.owners)
    assert [s.session_id for s in mine.sessions] == ["s-1"]
