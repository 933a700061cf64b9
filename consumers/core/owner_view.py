"""`OwnerView`: what the core knows of the owner when it orders and decides (pure data).

Built from the state by `consumers.core.view.view_of` at a given `now` (usage decayed to it);
read by the order key (`consumers.core.order_key`) and the decision (`consumers.core.policy`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from consumers.core.order import Waiting
from schemas.budgets import BudgetStatus
from schemas.enums import Mode, QPUState
from schemas.policy import Policy
from schemas.reservations import Reservation

Candidate = Waiting  # the name the policy's tables and tests use for a waiting job


@dataclass(frozen=True)
class Calibration:
    """The QPU's calibration: its epoch and until when it is valid (None: no window)."""

    epoch: int = 0
    valid_until: datetime | None = None


@dataclass(frozen=True)
class OwnerView:
    """What the core knows of the owner when it decides.

    Attributes:
        usage: decayed QPU-seconds per submitter (`Waiting.user_key`), as of `now`.
        account_usage: decayed QPU-seconds per account (`Waiting.account_key`), as of `now`.
        class_usage: decayed QPU-seconds per class, as of `now`.
        sessions_in_grace: sessions whose next job goes first in its class.
        ended_allocations: Slurm allocations whose epilog has run.
        budgets: the budgets in force with what is left, by ``account`` or ``account/user``.
        reservations: the reservations open now or to come, by start.
    """

    qpu_state: QPUState
    mode: Mode
    policy: Policy
    running: Candidate | None = None
    calibration: Calibration = Calibration()
    usage: Mapping[str, float] = field(default_factory=dict)
    account_usage: Mapping[str, float] = field(default_factory=dict)
    class_usage: Mapping[str, float] = field(default_factory=dict)
    sessions_in_grace: frozenset[str] = frozenset()
    ended_allocations: frozenset[str] = frozenset()
    budgets: Mapping[str, BudgetStatus] = field(default_factory=dict)
    reservations: tuple[Reservation, ...] = ()

    @property
    def busy(self) -> bool:
        """A job is on the QPU."""
        return self.running is not None
