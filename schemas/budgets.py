"""QPU-time budgets: how many QPU seconds an account (or one user in it) may use per period,
and what `qsched budget show` reports of one.

A budget is set in the policy (``[[budgets.limits]]``) or by an operator (``qsched budget set``,
a ``control.budget-set`` event, which wins over the policy's for the same account and user); an
operator's top-up (``control.budget-top-up``) adds seconds for the current period only. The
ledger (`consumers.core.ledger`) counts what was spent; the core decides on it
(`consumers.core.budgets`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Period = Literal["day", "week", "month"]
PERIODS: tuple[Period, ...] = ("day", "week", "month")


class Budget(BaseModel):
    """QPU seconds `account` (or `user` within it) may use per `period` (calendar, UTC; a week
    starts on Monday)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account: str = Field(min_length=1, max_length=256)
    user: str | None = Field(default=None, min_length=1, max_length=256)
    seconds: float = Field(gt=0, description="QPU seconds per period")
    period: Period = "month"

    @property
    def key(self) -> str:
        """``account`` or ``account/user``: what the ledger counts it by."""
        return self.account if self.user is None else f"{self.account}/{self.user}"


class BudgetsPolicy(BaseModel):
    """The policy's budgets and what a spent one means.

    Attributes:
        limits: budgets set in the policy (an operator's ``budget set`` wins for the same key).
        warn_at: share of a budget used from which submitters are warned (submit, queue).
        when_spent: at 0 left, new jobs of the account are held (the default) or refused.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    limits: tuple[Budget, ...] = ()
    warn_at: float = Field(default=0.8, gt=0, le=1, description="warn from this share used")
    when_spent: Literal["hold", "refuse"] = Field(
        default="hold", description="at 0 left, new jobs are held, or refused (BUDGET_SPENT)"
    )


class BudgetStatus(BaseModel):
    """One budget as `qsched budget show` (and `submit`, `queue`) report it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account: str
    user: str | None = None
    seconds: float
    period: Period
    period_start: AwareDatetime
    top_up_s: float = 0.0
    spent_s: float = 0.0
    left_s: float
    used: float = Field(description="share of the budget (with top-ups) used, 0..1+")
    warn: bool = False
    source: Literal["policy", "operator"] = "policy"

    def line(self) -> str:
        """One line for people: who, how much is left of what, this period."""
        who = self.account if self.user is None else f"{self.account}/{self.user}"
        total = self.seconds + self.top_up_s
        top = f" (+{self.top_up_s:g} s top-up)" if self.top_up_s else ""
        return (
            f"budget {who}: {max(self.left_s, 0):.0f} s left of {self.seconds:g} s{top} this "
            f"{self.period} ({self.used:.0%} of {total:g} s used)"
        )
