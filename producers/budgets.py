"""The QPU-time budgets a submitter's jobs spend, as the owner reports them (`budget-show`).

`fetch_budgets` asks the owner which budgets apply to the jobs the caller would submit now (the
account of its Slurm allocation, ``SLURM_JOB_ID``, as the owner's registry has it; outside one,
the caller's accounts) and what is left of each; `budget_notes` turns them into lines for people,
a warning from the policy's ``warn_at`` share used. `qsched submit` and `qsched queue` print them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from producers.client import QPUClient
from producers.errors import QschedError
from schemas.budgets import BudgetStatus
from schemas.enums import CommandName

NOTE_TIMEOUT_S = 2.0


def fetch_budgets(client: QPUClient, timeout: float = NOTE_TIMEOUT_S) -> list[BudgetStatus]:
    """The budgets the caller's jobs spend, with what is left (empty: none applies).

    Raises:
        NoOwnerAnswered: no owner answered within `timeout` seconds.
    """
    reply = client.control(
        CommandName.BUDGET_SHOW,
        allocation=os.environ.get("SLURM_JOB_ID"),
        mine=True,
        timeout=timeout,
    )
    return list(reply.budgets or []) if reply.ok else []


def budget_notes(client: QPUClient) -> Iterator[str]:
    """One line per budget the caller's jobs spend ("warning: " first from `warn_at` used);
    nothing when no owner runs or none answers soon (a note must never fail a submit)."""
    if client.owner_running() is False:
        return
    try:
        found = fetch_budgets(client)
    except QschedError:
        return
    for status in found:
        yield ("warning: " if status.warn else "") + status.line()
