"""`queue` and `status` replies: operators see every job, submitters see others' jobs without
their details (driven through the pure core's command table)."""

from __future__ import annotations

from consumers.core.commands import Command
from consumers.core.outcomes import Reply
from consumers.core.privacy import HIDDEN
from consumers.core.step import Dispatch
from schemas.control import ControlCommand, ControlReply
from schemas.enums import CommandName
from schemas.jobs import SlurmContext
from tests.unit.core_harness import Harness


def ask(h: Harness, command: CommandName, user: str) -> ControlReply:
    effects = h.feed(Command(ControlCommand(command=command), user, reply_to="r"))
    replies = [e.message for e in effects if isinstance(e, Reply)]
    assert len(replies) == 1 and isinstance(replies[0], ControlReply)
    assert replies[0].ok, replies[0].message
    return replies[0]


def test_a_submitter_sees_its_own_jobs_in_full_and_others_only_by_place_class_and_eta() -> None:
    h = Harness()
    bobs_running = h.submit("bob", slurm=SlurmContext(job_id="1", account="chem"))
    h.feed(Dispatch())
    bobs_waiting = h.submit("bob", slurm=SlurmContext(job_id="1", account="chem"))
    alices = h.submit("alice", job_class="development")

    full = ask(h, CommandName.QUEUE, "guest").queue or []  # guest: the policy's operator
    assert [e.job_id for e in full] == [bobs_running, bobs_waiting, alices]
    seen = ask(h, CommandName.QUEUE, "alice").queue or []
    assert [e.job_id for e in seen] == [HIDDEN, HIDDEN, alices]
    assert [e.position for e in seen] == [e.position for e in full]
    assert [e.eta_s for e in seen] == [e.eta_s for e in full]
    hidden = seen[1]
    assert hidden.user == HIDDEN and hidden.account is None and hidden.factors == {}
    assert hidden.job_class == "production" and seen[2].user == "alice"

    status = ask(h, CommandName.STATUS, "alice").status
    assert status is not None and status.running is not None
    assert status.running.job_id == HIDDEN and status.running.user is None
    assert status.waiting_by_account == {"chem": 1, "": 1}
    operator_view = ask(h, CommandName.STATUS, "guest").status
    assert operator_view is not None and operator_view.running is not None
    assert operator_view.running.job_id == bobs_running and operator_view.running.user == "bob"
    assert ask(h, CommandName.STATUS, "bob").status.running.job_id == bobs_running  # type: ignore[union-attr]
