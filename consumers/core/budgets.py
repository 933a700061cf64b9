"""The budget commands (pure handlers): ``budget-set``, ``budget-top-up`` (operators) and
``budget-show`` (anyone; a submitter sees the budgets their jobs spend).

A budget names an account the owner knows (its allocation registry, the policy's accounts and
budgets, the ledger) and optionally a user it has seen; an unknown name is refused, named. A
top-up needs a budget in force for the key and adds seconds to its current period only.
"""

from __future__ import annotations

from datetime import datetime

from consumers.core.budget_rules import in_force, status_of, statuses
from consumers.core.command_types import Command, Done, Refused, is_operator
from consumers.core.ledger import period_start
from consumers.core.state import OwnerState
from schemas.budgets import Budget, BudgetStatus
from schemas.enums import ErrorCode
from schemas.policy import Policy


def known_accounts(state: OwnerState, policy: Policy) -> set[str]:
    """Accounts the owner knows of: registry, policy (default accounts, budgets), ledger."""
    found = {a.account for a in state.allocations.values() if a.account}
    found |= set(policy.accounts.default.values())
    found |= {b.account for b in policy.budgets.limits}
    found |= {r.budget.account for r in state.budgets.values() if r.budget is not None}
    found |= {key for key in state.ledger.accounts if key}
    return found


def known_users(state: OwnerState, policy: Policy) -> set[str]:
    """Users the owner knows of: submitters, the registry's, the policy's default mapping."""
    found = set(state.owners.values()) | {a.user for a in state.allocations.values()}
    return found | {user for user in policy.accounts.default if user != "*"}


def _budget(state: OwnerState, policy: Policy, given: Command) -> Budget:
    """The budget the command names, checked against what the owner knows.

    Raises:
        Refused: an unknown account or user, named.
    """
    command = given.command
    account, user = command.account or "", command.user
    if account not in known_accounts(state, policy):
        raise Refused(
            ErrorCode.UNKNOWN_ACCOUNT,
            f"unknown account {account!r}: no registered allocation, policy entry or usage "
            "names it",
        )
    if user is not None and user not in known_users(state, policy):
        raise Refused(ErrorCode.UNKNOWN_USER, f"unknown user {user!r}: the owner never saw them")
    return Budget(
        account=account,
        user=user,
        seconds=command.seconds or 0.0,
        period=command.period or "month",
    )


def budget_set(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """``budget-set``: the operator's budget for the account (or user), replacing any other."""
    budget = _budget(state, policy, given)
    status = status_of(state, policy, budget, "operator", now)
    return Done(status.line(), fields={"budget": budget}, reply={"budgets": [status]})


def budget_top_up(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """``budget-top-up``: more seconds for the current period of a budget in force."""
    asked = _budget(state, policy, given)
    found = in_force(state, policy).get(asked.key)
    if found is None:
        raise Refused(
            ErrorCode.UNKNOWN_ACCOUNT,
            f"{asked.key} has no budget to top up (qsched budget set {asked.account} SECONDS)",
        )
    budget, source = found
    start = period_start(budget.period, now)
    top_up = asked.model_copy(update={"period": budget.period})
    before = status_of(state, policy, budget, source, now)
    top_up_s = before.top_up_s + asked.seconds
    used = before.spent_s / (budget.seconds + top_up_s)
    after = before.model_copy(
        update={
            "top_up_s": top_up_s,
            "left_s": before.left_s + asked.seconds,
            "used": round(used, 4),
            "warn": used >= policy.budgets.warn_at,
        }
    )
    return Done(
        after.line(),
        fields={"top_up": top_up, "period_start": start},
        reply={"budgets": [after]},
    )


def budget_show(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """``budget-show``: the budgets in force and what is left (a submitter, or anyone asking
    for `mine`: those their jobs spend, the account of `allocation` when named, else of all
    their accounts)."""
    command = given.command
    shown = list(statuses(state, policy, now).values())
    if command.mine or not is_operator(policy, given):
        user = given.user or ""
        accounts = _accounts_of(state, policy, user, command.allocation, command.mine)
        shown = [s for s in shown if s.account in accounts and s.user in (None, user)]
    if command.account is not None:
        shown = [s for s in shown if s.account == command.account]
    if command.user is not None and is_operator(policy, given):
        shown = [s for s in shown if s.user in (None, command.user)]
    return Done(_summary(shown), reply={"budgets": shown})


def _accounts_of(
    state: OwnerState, policy: Policy, user: str, allocation: str | None, exact: bool
) -> set[str]:
    """The accounts whose budgets `user` sees: with `exact` (a submit's note), the one a job of
    `allocation` (None: outside any) is charged to; else every account of theirs."""
    registered = state.allocations.get(allocation or "")
    default = policy.accounts.default_account(user)
    if registered is not None and registered.user == user:
        return {registered.account or default or ""}
    if exact and allocation is None:
        return {default or ""}
    found = {a.account for a in state.allocations.values() if a.user == user and a.account}
    return found | ({default} if default else set())


def _summary(shown: list[BudgetStatus]) -> str:
    if not shown:
        return "no budget applies"
    return "\n".join(status.line() for status in shown)
