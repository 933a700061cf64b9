"""Budgets in the pure core: periods, what is spent and left, holds that name the account, the
budget and what is left, top-ups, refusal at 0 by policy, operators only, unknown names refused,
and the same budgets after a failover (a fold of the log, or a snapshot)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from consumers.core.budget_rules import statuses
from consumers.core.ledger import period_start
from consumers.core.snapshot import from_data, to_data
from consumers.core.state import OwnerState
from consumers.core.step import Command, Dispatch
from consumers.core.view import queue_entries
from consumers.tools.eventlog.html import render_html
from consumers.tools.eventlog.model import build_timeline
from schemas.control import ControlCommand, ControlReply
from schemas.enums import CommandName, ErrorCode, JobState
from schemas.policy import parse_policy
from tests.unit.core_harness import Harness

T0 = datetime(2026, 3, 30, 12, 0, tzinfo=UTC)  # a Monday, two days before the month ends
BASE = (
    "shot_rate_hz = 100\njob_overhead_s = 0\n"
    "[accounts]\ndefault = { alice = 'phys', bob = 'phys', carol = 'chem' }\n"
)
POLICY = parse_policy(BASE)


@pytest.mark.parametrize(
    ("period", "at", "start"),
    [
        ("day", datetime(2026, 3, 4, 23, 59, tzinfo=UTC), datetime(2026, 3, 4, tzinfo=UTC)),
        ("week", datetime(2026, 3, 8, 10, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)),
        ("week", datetime(2026, 3, 2, 0, 0, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)),
        ("month", datetime(2026, 2, 28, 23, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)),
        ("month", datetime(2026, 3, 1, 0, 30, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)),
    ],
)
def test_a_period_starts_at_the_calendar_boundary_in_utc(
    period: str, at: datetime, start: datetime
) -> None:
    assert period_start(period, at) == start


def _command(
    h: Harness, name: CommandName, sender: str = "guest", **fields: object
) -> ControlReply:
    command = ControlCommand(command=name, issued_at=h.now, **fields)  # type: ignore[arg-type]
    effects = h.feed(Command(command, sender))
    return next(
        e.message for e in effects if getattr(e, "correlation_id", None) == command.command_id
    )  # type: ignore[attr-defined]


def _run(h: Harness, user: str, shots: int) -> str:
    """Submit a job and run it to its end: `shots` / 100 seconds on the QPU."""
    job_id = h.submit(user, shots=shots)
    h.feed(Dispatch())
    assert h.state.running is not None and h.state.running.job.job_id == job_id
    h.now += timedelta(seconds=shots / 100)
    from consumers.core.step import Finished

    h.feed(Finished(job_id, {"0": shots}))
    return job_id


def test_a_budget_is_spent_by_qpu_runs_and_a_job_that_does_not_fit_is_held_naming_it() -> None:
    h = Harness(POLICY, now=T0)
    _run(h, "carol", 100)  # chem exists in the policy; phys too
    reply = _command(h, CommandName.BUDGET_SET, account="phys", seconds=10, period="month")
    assert reply.ok, reply.message
    assert reply.budgets and reply.budgets[0].left_s == 10
    _run(h, "alice", 600)  # 6 s
    [status] = statuses(h.state, POLICY, h.now).values()
    assert (status.spent_s, status.left_s, status.warn) == (6.0, 4.0, False)
    waiting = h.submit("bob", shots=500)  # needs 5 s, 4 s left
    h.feed(Dispatch())
    assert h.state.running is None
    [entry] = queue_entries(h.state, POLICY, h.now, job_id=waiting)
    assert entry.held == (
        "held: account phys has 4 s left of its 10 s monthly budget; the job needs about 5 s"
    )
    carol = h.submit("carol", shots=500)  # another account runs meanwhile
    h.feed(Dispatch())
    assert h.state.running is not None and h.state.running.job.job_id == carol


def test_at_80_percent_the_budget_warns_at_0_jobs_are_held_and_a_top_up_releases_them() -> None:
    h = Harness(POLICY, now=T0)
    assert _command(h, CommandName.BUDGET_SET, account="phys", seconds=10).ok
    _run(h, "alice", 800)
    [status] = statuses(h.state, POLICY, h.now).values()
    assert status.warn and status.used == 0.8
    _run(h, "alice", 200)
    job = h.submit("alice", shots=1)
    h.feed(Dispatch())
    assert h.state.running is None
    [entry] = queue_entries(h.state, POLICY, h.now, job_id=job)
    assert entry.held is not None and "account phys has spent its 10 s monthly budget" in entry.held
    top = _command(h, CommandName.BUDGET_TOP_UP, account="phys", seconds=5)
    assert top.ok and top.budgets and top.budgets[0].left_s == 5
    h.feed(Dispatch())
    assert h.state.running is not None and h.state.running.job.job_id == job


def test_the_next_period_starts_afresh_and_a_top_up_does_not_carry_over() -> None:
    h = Harness(POLICY, now=T0)
    assert _command(h, CommandName.BUDGET_SET, account="phys", seconds=10, period="week").ok
    _run(h, "alice", 1000)
    assert _command(h, CommandName.BUDGET_TOP_UP, account="phys", seconds=5).ok
    assert statuses(h.state, POLICY, h.now)["phys"].left_s == 5
    h.now = T0 + timedelta(days=7)
    status = statuses(h.state, POLICY, h.now)["phys"]
    assert (status.spent_s, status.top_up_s, status.left_s) == (0.0, 0.0, 10.0)


def test_a_user_budget_holds_that_user_only_and_the_operators_budget_replaces_the_policys() -> None:
    policy = parse_policy(
        BASE + "[[budgets.limits]]\naccount = 'phys'\nuser = 'alice'\nseconds = 1\nperiod = 'day'\n"
    )
    h = Harness(policy, now=T0)
    _run(h, "alice", 100)
    held = h.submit("alice", shots=100)
    bob = h.submit("bob", shots=100)
    h.feed(Dispatch())
    assert h.state.running is not None and h.state.running.job.job_id == bob
    [entry] = queue_entries(h.state, policy, h.now, job_id=held)
    assert entry.held is not None and "account phys (user alice) has spent" in entry.held
    raised = _command(h, CommandName.BUDGET_SET, account="phys", user="alice", seconds=100)
    assert raised.ok and raised.budgets and raised.budgets[0].source == "operator"
    assert statuses(h.state, policy, h.now)["phys/alice"].left_s == 99


def test_with_when_spent_refuse_a_new_job_of_a_spent_budget_is_refused() -> None:
    policy = parse_policy(BASE + "[budgets]\nwhen_spent = 'refuse'\n")
    h = Harness(policy, now=T0)
    _run(h, "alice", 100)
    assert _command(h, CommandName.BUDGET_SET, account="phys", seconds=1).ok
    refused = h.submit("alice", shots=10)
    final = [e for e in h.log if e.topic == "job.rejected" and e.job_id == refused]
    assert final and final[0].result is not None and final[0].result.error is not None
    error = final[0].result.error
    assert error.code is ErrorCode.BUDGET_SPENT and "account phys" in error.message
    assert final[0].result.state is JobState.REJECTED


def test_budget_changes_are_for_operators_logged_when_refused_and_name_unknown_accounts() -> None:
    h = Harness(POLICY, now=T0)
    denied = _command(h, CommandName.BUDGET_SET, sender="alice", account="phys", seconds=10)
    assert not denied.ok and denied.error is not None
    assert denied.error.code is ErrorCode.NOT_AUTHORISED
    logged = [e for e in h.log if e.topic == "control.budget-set"]
    assert logged and logged[-1].user == "alice" and logged[-1].data["ok"] is False
    unknown = _command(h, CommandName.BUDGET_SET, account="nosuch", seconds=10)
    assert not unknown.ok and unknown.error is not None
    assert unknown.error.code is ErrorCode.UNKNOWN_ACCOUNT and "'nosuch'" in unknown.message
    stranger = _command(h, CommandName.BUDGET_SET, account="phys", user="zed", seconds=10)
    assert not stranger.ok and stranger.error is not None
    assert stranger.error.code is ErrorCode.UNKNOWN_USER
    no_budget = _command(h, CommandName.BUDGET_TOP_UP, account="chem", seconds=10)
    assert not no_budget.ok and "no budget to top up" in no_budget.message
    assert h.state.budgets == {}


def test_a_submitter_sees_the_budgets_their_jobs_spend_and_an_operator_all() -> None:
    h = Harness(POLICY, now=T0)
    assert _command(h, CommandName.BUDGET_SET, account="phys", seconds=10).ok
    assert _command(h, CommandName.BUDGET_SET, account="chem", seconds=20).ok
    mine = _command(h, CommandName.BUDGET_SHOW, sender="alice")
    assert [b.account for b in mine.budgets or []] == ["phys"]
    everyone = _command(h, CommandName.BUDGET_SHOW)
    assert sorted(b.account for b in everyone.budgets or []) == ["chem", "phys"]


def test_budgets_are_the_same_after_a_failover_and_from_a_snapshot() -> None:
    h = Harness(POLICY, now=T0)
    assert _command(h, CommandName.BUDGET_SET, account="phys", seconds=10).ok
    _run(h, "alice", 300)
    assert _command(h, CommandName.BUDGET_TOP_UP, account="phys", seconds=2).ok
    before = statuses(h.state, POLICY, h.now)
    refolded = OwnerState.for_half_life(3600)
    for event in h.log:
        refolded.apply(event)
    assert statuses(refolded, POLICY, h.now) == before
    restored = from_data(to_data(h.state), 3600)
    assert statuses(restored, POLICY, h.now) == before
    assert before["phys"].left_s == 9.0


def test_the_indexed_decision_skips_a_spent_account_and_agrees_with_the_reference() -> None:
    """The owner's `decide_indexed` skips the cohorts of a spent budget or a reservation of
    others without walking them, and still picks what the reference `decide` picks."""
    from consumers.core.policy import decide, decide_indexed
    from consumers.core.view import view_of
    from schemas.reservations import Reservation

    h = Harness(POLICY, now=T0)
    _run(h, "carol", 100)
    assert _command(h, CommandName.BUDGET_SET, account="phys", seconds=1).ok
    _run(h, "alice", 100)
    for user, shots in [("alice", 10), ("bob", 20), ("alice", 30), ("carol", 40), ("bob", 5)]:
        h.submit(user, shots=shots)
    view = view_of(h.state, POLICY, h.now)
    indexed = decide_indexed(view, h.state.index, h.now)
    reference = decide(view, list(h.state.waiting.values()), h.now)
    assert indexed.job is not None and indexed.job.user == "carol"
    assert reference.job is not None and reference.job.job_id == indexed.job.job_id
    window = Reservation(name="w", start=h.now, end=h.now + timedelta(hours=1), users=("alice",))
    assert _command(h, CommandName.RESERVATION_CREATE, reservation=window).ok
    view = view_of(h.state, POLICY, h.now)
    assert decide_indexed(view, h.state.index, h.now).job is None  # alice is spent, others out
    assert decide(view, list(h.state.waiting.values()), h.now).job is None


def test_an_operator_asking_for_their_own_budgets_sees_only_those_their_jobs_spend() -> None:
    policy = parse_policy(BASE.replace("carol = 'chem'", "carol = 'chem', guest = 'chem'"))
    h = Harness(policy, now=T0)
    assert _command(h, CommandName.BUDGET_SET, account="phys", seconds=10).ok
    assert _command(h, CommandName.BUDGET_SET, account="chem", seconds=20).ok
    mine = _command(h, CommandName.BUDGET_SHOW, mine=True)
    assert [b.account for b in mine.budgets or []] == ["chem"]


def test_a_top_up_answers_with_the_share_used_of_the_new_total() -> None:
    h = Harness(POLICY, now=T0)
    assert _command(h, CommandName.BUDGET_SET, account="phys", seconds=10).ok
    _run(h, "alice", 900)
    [after] = _command(h, CommandName.BUDGET_TOP_UP, account="phys", seconds=20).budgets or []
    assert (after.left_s, after.used, after.warn) == (21.0, 0.3, False)
    assert after == statuses(h.state, POLICY, h.now)["phys"]


def test_the_html_timeline_marks_a_budget_set_past_80_percent_spent_and_topped_up() -> None:
    """The budgets track of the HTML timeline: the operator's set, the run that took the account
    past 80 %, the one that spent it, the top-up, each a mark with its tip (folded from the log
    as the owner counted it)."""
    h = Harness(POLICY, now=T0)
    assert _command(h, CommandName.BUDGET_SET, account="phys", seconds=10).ok
    _run(h, "alice", 500)  # 50 %: no mark
    _run(h, "alice", 300)  # 80 %
    _run(h, "carol", 300)  # another account: no mark
    _run(h, "alice", 200)  # 100 %
    assert _command(h, CommandName.BUDGET_TOP_UP, account="phys", seconds=5).ok
    marks = build_timeline(h.log, budget_marks=True).budget_marks
    assert [(m.kind, m.key) for m in marks] == [
        ("set", "phys"),
        ("warn", "phys"),
        ("spent", "phys"),
        ("top-up", "phys"),
    ]
    assert marks[1].text == "budget phys past 80%: 8 s of 10 s this month"
    assert marks[2].text == "budget phys spent: 10 s of 10 s this month"
    assert marks[0].text == "budget phys set: 10 s per month" and marks[0].by == "guest"
    assert build_timeline(h.log).budget_marks == []  # only when asked: a second fold
    page = render_html(build_timeline(h.log, budget_marks=True))
    assert page.count('class="budget-mark') == 4
    assert "<title>budget phys spent: 10 s of 10 s this month" in page
