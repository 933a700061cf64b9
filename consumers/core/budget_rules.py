"""Budgets in the decision (pure): what is left of each, and what that means for a job.

A budget's period is calendar (UTC); what was spent in it is the ledger's (`Ledger.spent`, the
QPU seconds of runs that ended in it; emulator lanes never count). Left = seconds + this period's
top-up - spent. The policy's `job_hold` asks `budget_hold`: at 0 left a job of the account (or
user) is held, naming the account, the budget and what is left; a job whose estimated duration
exceeds what is left is held too (a shorter one of the same account may still start). With
``when_spent = "refuse"`` a new job of a spent budget is refused at intake (`budget_refusal`).
A budget only gates the QPU: emulator lanes still run the job where its class allows.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from consumers.core.ledger import NO_ACCOUNT, period_start
from consumers.core.order import Waiting
from consumers.core.state_data import StateData
from schemas.budgets import Budget, BudgetStatus
from schemas.enums import ErrorCode
from schemas.jobs import JobError
from schemas.policy import Policy


def in_force(state: StateData, policy: Policy) -> dict[str, tuple[Budget, str]]:
    """The budgets in force by key: the policy's, replaced by operators' for the same key."""
    found: dict[str, tuple[Budget, str]] = {b.key: (b, "policy") for b in policy.budgets.limits}
    for key, record in state.budgets.items():
        if record.budget is not None:
            found[key] = (record.budget, "operator")
    return found


def status_of(
    state: StateData, policy: Policy, budget: Budget, source: str, now: datetime
) -> BudgetStatus:
    """What is spent and left of `budget` at `now`."""
    start = period_start(budget.period, now)
    record = state.budgets.get(budget.key)
    top_up_s = record.top_up_s if record is not None and record.top_up_start == start else 0.0
    spent_s = state.ledger.spent(budget.period, budget.key, now)
    total_s = budget.seconds + top_up_s
    used = spent_s / total_s
    return BudgetStatus(
        account=budget.account,
        user=budget.user,
        seconds=budget.seconds,
        period=budget.period,
        period_start=start,
        top_up_s=top_up_s,
        spent_s=round(spent_s, 3),
        left_s=round(total_s - spent_s, 3),
        used=round(used, 4),
        warn=used >= policy.budgets.warn_at,
        source="operator" if source == "operator" else "policy",
    )


def statuses(state: StateData, policy: Policy, now: datetime) -> dict[str, BudgetStatus]:
    """Every budget in force with what is left, by key (empty and cheap without budgets)."""
    return {
        key: status_of(state, policy, budget, source, now)
        for key, (budget, source) in in_force(state, policy).items()
    }


def applying(
    budgets: Mapping[str, BudgetStatus], account: str | None, user: str
) -> list[BudgetStatus]:
    """The budgets a job of `account` and `user` spends: its account's, then its user's."""
    acc = account or NO_ACCOUNT
    keys = (acc, f"{acc}/{user}")
    return [budgets[key] for key in keys if key in budgets]


PER = {"day": "daily", "week": "weekly", "month": "monthly"}


def _who(status: BudgetStatus) -> str:
    return f"account {status.account}" + (f" (user {status.user})" if status.user else "")


def budget_hold(budgets: Mapping[str, BudgetStatus], job: Waiting, needs_s: float) -> str | None:
    """Why the job may not start on the QPU for its budgets, or None."""
    for status in applying(budgets, job.account, job.user):
        budget = f"{status.seconds + status.top_up_s:g} s {PER[status.period]} budget"
        if status.left_s <= 0:
            return (
                f"held: {_who(status)} has spent its {budget} (0 s left until the "
                f"{status.period} ends; an operator may top it up)"
            )
        if needs_s > status.left_s:
            return (
                f"held: {_who(status)} has {status.left_s:.0f} s left of its {budget}; "
                f"the job needs about {needs_s:.0f} s"
            )
    return None


def budget_refusal(
    state: StateData, policy: Policy, account: str | None, user: str, now: datetime
) -> JobError | None:
    """With ``when_spent = "refuse"``: the refusal of a new job whose budget is spent."""
    if policy.budgets.when_spent != "refuse" or not (policy.budgets.limits or state.budgets):
        return None
    for status in applying(statuses(state, policy, now), account, user):
        if status.left_s <= 0:
            return JobError(
                code=ErrorCode.BUDGET_SPENT,
                message=f"{_who(status)} has spent its {status.seconds + status.top_up_s:g} s "
                f"{PER[status.period]} budget (0 s left until the {status.period} ends); ask an "
                "operator for a top-up",
                details={"account": status.account, "user": status.user},
            )
    return None
