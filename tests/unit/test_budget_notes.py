"""The SDK's budget note (issue 22 item 2: '`submit` (CLI and SDK) shows the remaining budget'):
`QPUClient.submit` logs what is left on the ``qsched.budget`` logger, a WARNING from
``warn_at``, at most once a minute per client, nothing without an owner or a budget."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from producers.budgets import BudgetCommands
from producers.client import QPUClient
from schemas.budgets import BudgetStatus
from schemas.control import ControlReply
from schemas.enums import CommandName

START = datetime(2026, 12, 1, tzinfo=UTC)


def _status(left_s: float, warn: bool) -> BudgetStatus:
    return BudgetStatus(
        account="phys",
        seconds=100,
        period="month",
        period_start=START,
        spent_s=100 - left_s,
        left_s=left_s,
        used=(100 - left_s) / 100,
        warn=warn,
    )


class _Session:
    def __init__(self, running: bool | None) -> None:
        self.running = running

    def owner_running(self) -> bool | None:
        return self.running


class FakeClient(BudgetCommands):
    """The mixin over a control plane that answers `budget-show` with `statuses`."""

    def __init__(self, statuses: list[BudgetStatus], running: bool | None = True) -> None:
        self.session = _Session(running)  # type: ignore[assignment]
        self.statuses = statuses
        self.asked: list[dict[str, Any]] = []

    def control(self, command: CommandName, **fields: Any) -> ControlReply:
        self.asked.append({"command": command, **fields})
        return ControlReply(command_id="c", command=command, ok=True, budgets=self.statuses)


def test_a_submit_notes_what_is_left_once_a_minute_and_warns_from_warn_at(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="qsched.budget")
    client = FakeClient([_status(left_s=60, warn=False)])
    assert client.note_budgets(now_s=0) == client.statuses
    assert client.asked[0]["command"] is CommandName.BUDGET_SHOW and client.asked[0]["mine"]
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, client.statuses[0].line())
    ]
    assert client.note_budgets(now_s=59) == []  # within the minute: no second round trip
    assert len(client.asked) == 1
    client.statuses = [_status(left_s=10, warn=True)]
    assert client.note_budgets(now_s=61) == client.statuses
    assert caplog.records[-1].levelno == logging.WARNING
    assert "budget phys: 10 s left of 100 s" in caplog.records[-1].getMessage()


def test_no_note_without_an_owner_or_a_budget(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="qsched.budget")
    alone = FakeClient([_status(left_s=60, warn=False)], running=False)
    assert alone.note_budgets(now_s=0) == [] and alone.asked == []
    assert FakeClient([]).note_budgets(now_s=0) == []
    assert caplog.records == []


def test_the_sdk_client_has_budgets_and_its_submit_notes_them() -> None:
    assert issubclass(QPUClient, BudgetCommands)
    assert QPUClient.budgets is BudgetCommands.budgets
