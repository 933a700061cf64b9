"""Budgets on the timeline: when an operator set or topped one up, and when an account's spending
crossed the warning share and reached its budget, folded from the log.

`BudgetLog.see` folds every event with the owner's own `OwnerState.apply` (so what is spent is
the ledger's, exactly as the owner counted it: QPU runs, never emulator lanes) and the policy
the log has in force (its budgets and ``warn_at``); after a budget command or a run's end it
compares each budget's share used with what it was, and notes a crossing upward (warn, spent)
once, again only after a top-up or a new period brought it back down. Pure: events in, marks out.
"""

from __future__ import annotations

from datetime import datetime

from consumers.core.budget_rules import statuses
from consumers.core.state import OwnerState
from consumers.tools.eventlog.shapes import BudgetMark
from schemas.enums import CommandName
from schemas.envelope import Event
from schemas.errors import PolicyError
from schemas.events import Topic
from schemas.policy import Policy, parse_policy

SET_TOPIC = f"{Topic.CONTROL.value}.{CommandName.BUDGET_SET.value}"
TOP_UP_TOPIC = f"{Topic.CONTROL.value}.{CommandName.BUDGET_TOP_UP.value}"
LEVELS = ("ok", "warn", "spent")


class BudgetLog:
    """The budget marks of a log, event by event."""

    def __init__(self) -> None:
        self.state = OwnerState()
        self.marks: list[BudgetMark] = []
        self._levels: dict[str, int] = {}  # budget key -> index in LEVELS
        self._policy_text: str | None = None
        self._policy = Policy()

    def see(self, event: Event) -> None:
        """Fold one event (in log order)."""
        self.state.apply(event)
        if event.topic in (SET_TOPIC, TOP_UP_TOPIC):
            self._command(event)
        elif event.result is None:
            return
        self._crossings(event.at)

    def _policy_now(self) -> Policy:
        if self.state.policy != self._policy_text:
            self._policy_text = self.state.policy
            try:
                self._policy = parse_policy(self._policy_text) if self._policy_text else Policy()
            except PolicyError:
                self._policy = Policy()  # a log's policy this version cannot read: the defaults
        return self._policy

    def _command(self, event: Event) -> None:
        data = event.data
        given = data.get("budget") or data.get("top_up")
        if not isinstance(given, dict):
            return  # refused: nothing changed
        who = given["account"] + (f"/{given['user']}" if given.get("user") else "")
        if event.topic == SET_TOPIC:
            kind, text = "set", f"budget {who} set: {given['seconds']:g} s per {given['period']}"
        else:
            kind, text = "top-up", f"budget {who} topped up by {given['seconds']:g} s"
        self.marks.append(BudgetMark(event.at, who, kind, text, event.user))

    def _crossings(self, at: datetime) -> None:
        policy = self._policy_now()
        for key, status in statuses(self.state, policy, at).items():
            level = 2 if status.left_s <= 0 else 1 if status.warn else 0
            before = self._levels.get(key, 0)
            self._levels[key] = level
            if level > before:
                what = "spent" if level == 2 else f"past {policy.budgets.warn_at:.0%}"
                text = (
                    f"budget {key} {what}: {status.spent_s:.0f} s of "
                    f"{status.seconds + status.top_up_s:g} s this {status.period}"
                )
                self.marks.append(BudgetMark(at, key, LEVELS[level], text))
