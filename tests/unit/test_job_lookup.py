"""`result` and `history` commands in the pure core, and the job offset index of the shell."""

from __future__ import annotations

from consumers.core.commands import Command
from consumers.core.outcomes import AnswerFromLog, Reply
from consumers.core.step import Dispatch
from consumers.owner.joblog import NOT_YET, JobOffsets
from schemas.control import ControlCommand
from schemas.enums import CommandName, ErrorCode, JobState
from schemas.policy import parse_policy
from tests.unit.core_harness import POLICY, Harness

OPERATORS = parse_policy(
    "aging_step_s = 60\nshot_rate_hz = 100\njob_overhead_s = 0\noperators = ['oscar']\n"
)


def ask(h: Harness, user: str, job_id: str, command: CommandName = CommandName.RESULT) -> object:
    """The one answer effect of a result/history command."""
    effects = h.feed(Command(ControlCommand(command=command, job_id=job_id, wait=True), user))
    assert len(effects) == 1
    return effects[0]


def test_the_submitter_gets_an_answer_from_the_log_with_its_place_in_line() -> None:
    h = Harness()
    first = h.submit("alice")
    second = h.submit("alice")
    h.feed(Dispatch())
    answer = ask(h, "alice", second)
    assert isinstance(answer, AnswerFromLog)
    assert answer.job_id == second and answer.watch and not answer.ended
    assert answer.reply.ok and answer.reply.queue is not None
    assert answer.reply.queue[0].position == 1, answer.reply.message
    running = ask(h, "alice", first)
    assert isinstance(running, AnswerFromLog)
    assert running.reply.queue and running.reply.queue[0].state is JobState.RUNNING
    h.finish_running()
    ended = ask(h, "alice", first, CommandName.HISTORY)
    assert isinstance(ended, AnswerFromLog) and ended.ended and ended.reply.queue is None
    assert "ended DONE" in ended.reply.message


def test_another_user_is_refused_with_no_data_and_the_refusal_is_logged() -> None:
    h = Harness()
    job = h.submit("alice")
    for command in (CommandName.RESULT, CommandName.HISTORY):
        before = len(h.log)
        answer = ask(h, "mallory", job, command)
        assert isinstance(answer, Reply)  # a plain refusal: the shell reads nothing
        reply = answer.message
        assert not reply.ok and reply.error.code is ErrorCode.NOT_AUTHORISED  # type: ignore[union-attr]
        assert reply.queue is None and reply.result is None and reply.history is None  # type: ignore[union-attr]
        assert h.log[before].topic == f"control.{command.value}" and h.log[before].user == "mallory"


def test_a_prefix_resolves_among_the_senders_own_jobs_only() -> None:
    h = Harness(OPERATORS)
    alice = h.submit("alice")
    bob = h.submit("bob")
    common = next(i for i in range(4, 36) if alice[:i] != bob[:i])  # shortest distinct prefix
    own = ask(h, "alice", alice[: max(common, 4)])
    assert isinstance(own, AnswerFromLog) and own.job_id == alice
    # Bob's prefix names no job of alice's: unknown, as if it did not exist.
    foreign = ask(h, "alice", bob[: max(common, 4)])
    assert isinstance(foreign, Reply)
    assert foreign.message.error.code is ErrorCode.UNKNOWN_JOB  # type: ignore[union-attr]
    assert "of user 'alice'" in foreign.message.message  # type: ignore[union-attr]
    # An operator may name anyone's job by prefix.
    operator = ask(h, "oscar", bob[: max(common, 4)])
    assert isinstance(operator, AnswerFromLog) and operator.job_id == bob
    too_short = ask(h, "oscar", bob[:3])
    assert isinstance(too_short, Reply) and not too_short.message.ok  # type: ignore[union-attr]


def test_an_ambiguous_prefix_is_refused_naming_how_many_match() -> None:
    h = Harness(OPERATORS)
    for job_id in ("abcd0000-0000-4000-8000-000000000001", "abcd1111-0000-4000-8000-000000000002"):
        h.submit("alice", job_id=job_id)
    reply = ask(h, "alice", "abcd")
    assert isinstance(reply, Reply)
    assert reply.message.error.code is ErrorCode.UNKNOWN_JOB  # type: ignore[union-attr]
    assert "matches 2 jobs" in reply.message.message  # type: ignore[union-attr]
    assert isinstance(ask(h, "alice", "abcd1"), AnswerFromLog)


def test_offsets_keep_first_and_final_bounded_and_survive_a_snapshot() -> None:
    index = JobOffsets(limit=3)
    index.learn("a", "job.accepted", 10)
    index.learn("a", "job.started", 12)
    assert index.first("a") == 10 and index.final("a") is None
    index.learn("a", "job.done", 15)
    assert index.final("a") == 15 and index.last == 15
    for n, job in enumerate("bcd"):
        index.learn(job, "job.accepted", 20 + n)
    assert index.first("a") is None and len(index) == 3  # the oldest went
    index.learn("b", "job.rejected", 30)
    order = ["a", "b", "c", "d", "e"]  # the snapshot's owners: "a" went, "e" never seen
    data = index.to_data(order)
    assert data == [None, 20, 10, 1, None, 1, None, None]
    again = JobOffsets(limit=3)
    again.load(order, data)
    assert again.to_data(order) == data and again.final("b") == 30 and again.first("a") is None
    assert again.first("c") == 21 and again.final("c") is None and again.last == 30
    assert NOT_YET == -1


def test_the_default_policy_lets_submitters_ask_for_their_own_results() -> None:
    h = Harness(POLICY)
    job = h.submit("alice")
    assert isinstance(ask(h, "alice", job), AnswerFromLog)


def _reply(h: Harness, user: str, command: CommandName, job_id: str, **fields: object) -> object:
    effects = h.feed(Command(ControlCommand(command=command, job_id=job_id, **fields), user))
    answer = effects[-1]
    return answer.reply if isinstance(answer, AnswerFromLog) else answer.message  # type: ignore[attr-defined]


def test_every_command_about_a_job_resolves_a_prefix_on_the_owner() -> None:
    """Given a waiting job, when its submitter names it by 8 characters in any command about one
    job, then the owner resolves them and answers with the full id (the CLI never reads the log)."""
    h = Harness(OPERATORS)
    job = h.submit("alice")
    prefix = job[:8]
    for command, fields in [
        (CommandName.QUEUE, {}),
        (CommandName.SHOW, {}),
        (CommandName.RESULT, {}),
        (CommandName.HISTORY, {}),
        (CommandName.UPDATE, {"priority": 0}),
        (CommandName.HOLD, {}),
        (CommandName.RELEASE, {}),
        (CommandName.CANCEL, {}),
    ]:
        reply = _reply(h, "alice", command, prefix, **fields)
        assert reply.ok and reply.job_id == job, (command, reply.message)  # type: ignore[attr-defined]


def test_a_refused_command_with_a_mistyped_id_names_no_job_in_the_log() -> None:
    """Given a refused `result 00000000` (no such job), then its control event names no job, so
    the typed text never becomes a job that a later prefix could match."""
    h = Harness(OPERATORS)
    job = h.submit("alice", job_id="00000000-aaaa-4000-8000-000000000001")
    before = len(h.log)
    refused = _reply(h, "oscar", CommandName.RESULT, "00000001")
    assert not refused.ok  # type: ignore[attr-defined]
    assert h.log[before].topic == "control.result" and h.log[before].job_id is None
    assert _reply(h, "oscar", CommandName.SHOW, "0000").job_id == job  # type: ignore[attr-defined]
    hold = _reply(h, "alice", CommandName.HOLD, "00000000")
    assert hold.ok and hold.job_id == job  # type: ignore[attr-defined]
