"""Job numbers (the integer ids a QRMI gateway shows), receipts, the `jobs` command and a
gateway acting for a user: the pure core and the delivery reader, no broker."""

from __future__ import annotations

from types import SimpleNamespace

from consumers.core.commands import Command
from consumers.core.outcomes import Reply
from consumers.core.snapshot import from_data, to_data
from consumers.core.step import Arrival
from consumers.owner.deliveries import ON_BEHALF_OF, acting_user
from schemas.control import ControlCommand, ControlReply
from schemas.enums import CommandName, ErrorCode, JobState
from schemas.jobs import JobReceipt, JobRequest
from tests.unit.core_harness import SEQ, Harness


def _ask(h: Harness, user: str, **fields: object) -> ControlReply:
    effects = h.feed(Command(ControlCommand(**fields), user, reply_to="r"))  # type: ignore[arg-type]
    replies = [e.message for e in effects if isinstance(e, Reply)]
    replies += [e.reply for e in effects if hasattr(e, "reply")]  # AnswerFromLog
    reply = replies[-1]
    assert isinstance(reply, ControlReply)
    return reply


def test_accepted_jobs_get_consecutive_numbers_that_survive_a_snapshot() -> None:
    """Given three accepted jobs, then they are numbered 1, 2, 3 and a snapshot keeps that."""
    h = Harness()
    ids = [h.submit(), h.submit(user="bob"), h.submit()]
    assert [h.state.numbers[i] for i in ids] == [1, 2, 3]
    restored = from_data(to_data(h.state), h.policy.fair_share_half_life_s)
    assert restored.by_number == {1: ids[0], 2: ids[1], 3: ids[2]}
    assert restored.last_number == 3
    h.state = restored
    assert h.state.numbers[h.submit()] == 4


def test_a_receipt_is_sent_only_when_asked_and_again_for_a_redelivered_copy() -> None:
    """Given a job submitted with `receipt`, then its submitter is told its number, and a
    redelivered copy is told the same number (not a new one)."""
    h = Harness()
    h.submit()
    job = JobRequest(job_class="production", shots=10, sequence=SEQ, receipt=True)
    effects = h.feed(Arrival(job, "alice", reply_to="q"))
    receipts = [e.message for e in effects if isinstance(e, Reply)]
    assert receipts == [JobReceipt(job_id=job.job_id, number=2)]
    again = h.feed(Arrival(job, "alice", reply_to="q"))
    assert JobReceipt(job_id=job.job_id, number=2) in [
        e.message for e in again if isinstance(e, Reply)
    ]
    assert h.state.last_number == 2
    plain = h.feed(Arrival(JobRequest(job_class="production", shots=1, sequence=SEQ), "a", "q"))
    assert not [e for e in plain if isinstance(e, Reply) and e.message is not None]


def test_a_job_command_by_number_finds_only_the_senders_job() -> None:
    """Given jobs of alice and bob, when alice cancels by number, then her job ends and bob's
    number is unknown to her (as if it did not exist)."""
    h = Harness()
    alice_job = h.submit()
    h.submit(user="bob")
    reply = _ask(h, "alice", command=CommandName.CANCEL, number=1)
    assert reply.ok and reply.number == 1
    assert h.state.finished[alice_job] is JobState.CANCELED
    refused = _ask(h, "alice", command=CommandName.CANCEL, number=2)
    assert not refused.ok and refused.error is not None
    assert refused.error.code is ErrorCode.UNKNOWN_JOB
    assert "bob" not in refused.message


def test_the_jobs_command_lists_the_senders_jobs_newest_first() -> None:
    """Given jobs of two users, one ended, then each sees only theirs, newest first."""
    h = Harness()
    first = h.submit()
    h.submit(user="bob")
    second = h.submit(session_id="s1")
    _ask(h, "alice", command=CommandName.CANCEL, job_id=first)
    reply = _ask(h, "alice", command=CommandName.JOBS)
    assert reply.jobs is not None
    assert [(j.job_id, j.number, j.state) for j in reply.jobs] == [
        (second, 3, JobState.QUEUED),
        (first, 1, JobState.CANCELED),
    ]
    assert reply.jobs[0].session_id == "s1"


def _props(user: str, **headers: object) -> SimpleNamespace:
    return SimpleNamespace(user_id=user, headers=headers)


def test_only_a_gateway_may_act_for_another_user() -> None:
    """Given the x-on-behalf-of header, then a gateway user acts for the named user, anyone
    else is refused, and a message without it is its sender's."""
    gateways = ("qsched-gateway",)
    assert acting_user(_props("alice"), gateways) == ("alice", None)
    assert acting_user(_props("qsched-gateway", **{ON_BEHALF_OF: "bob"}), gateways) == ("bob", None)
    user, problem = acting_user(_props("alice", **{ON_BEHALF_OF: "bob"}), gateways)
    assert user == "alice" and problem is not None
    assert problem.code is ErrorCode.NOT_AUTHORISED
    _, garbage = acting_user(_props("qsched-gateway", **{ON_BEHALF_OF: "a b;c"}), gateways)
    assert garbage is not None and garbage.code is ErrorCode.INVALID_SCHEMA
