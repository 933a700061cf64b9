"""What a budget command changes in the owner's state (the fold's part; `OwnerState.apply`
calls it for an accepted ``control.budget-set`` or ``control.budget-top-up``).

`budget-set` records the operator's budget for its key (``account`` or ``account/user``),
replacing the policy's; `budget-top-up` adds seconds to the period its event names (a top-up of
an earlier period is replaced, not added to).
"""

from __future__ import annotations

from consumers.core.state_data import BudgetRecord, StateData
from schemas.events import ControlApplied


def budget_changed(state: StateData, applied: ControlApplied) -> None:
    """Fold an accepted budget command (its `budget` or `top_up` with `period_start`)."""
    if applied.budget is not None:
        record = state.budgets.setdefault(applied.budget.key, BudgetRecord())
        record.budget = applied.budget
    elif applied.top_up is not None and applied.period_start is not None:
        record = state.budgets.setdefault(applied.top_up.key, BudgetRecord())
        if record.top_up_start != applied.period_start:
            record.top_up_s, record.top_up_start = 0.0, applied.period_start
        record.top_up_s += applied.top_up.seconds
