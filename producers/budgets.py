"""The QPU-time budgets a submitter's jobs spend, as the owner reports them (`budget-show`).

`fetch_budgets` asks the owner which budgets apply to the jobs the caller would submit now (the
account of its Slurm allocation, ``SLURM_JOB_ID``, as the owner's registry has it; outside one,
the caller's accounts) and what is left of each; `budget_notes` turns them into lines for people,
a warning from the policy's ``warn_at`` share used. `qsched submit` and `qsched queue` print them.

In the SDK, `BudgetCommands` (mixed into `QPUClient`) gives ``client.budgets()``, and after a
submit ``note_budgets`` logs what is left on the ``qsched.budget`` logger (INFO; WARNING from
``warn_at``, which Python shows without any logging set up): at most once every
`NOTE_EVERY_S` per client, never when no owner runs, and never failing or long delaying the
submit (a short timeout; no answer: no note), so a rank submitting thousands of jobs asks once
a minute, not once a job.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator

from producers.commands import OwnerCommands
from producers.errors import QschedError
from schemas.budgets import BudgetStatus
from schemas.enums import CommandName

NOTE_TIMEOUT_S = 2.0
SDK_NOTE_TIMEOUT_S = 0.5  # an SDK submit waits at most this for its note
NOTE_EVERY_S = 60.0
log = logging.getLogger("qsched.budget")


def fetch_budgets(client: OwnerCommands, timeout: float = NOTE_TIMEOUT_S) -> list[BudgetStatus]:
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


def _quiet_fetch(client: OwnerCommands, timeout: float) -> list[BudgetStatus]:
    """`fetch_budgets`, or nothing when no owner runs or none answers soon."""
    if client.session.owner_running() is False:
        return []
    try:
        return fetch_budgets(client, timeout)
    except QschedError:
        return []


def budget_notes(client: OwnerCommands) -> Iterator[str]:
    """One line per budget the caller's jobs spend ("warning: " first from `warn_at` used);
    nothing when no owner runs or none answers soon (a note must never fail a submit)."""
    for status in _quiet_fetch(client, NOTE_TIMEOUT_S):
        yield ("warning: " if status.warn else "") + status.line()


class BudgetCommands(OwnerCommands):
    """The budgets of the SDK's client: asked for (`budgets`), and noted after submits."""

    _budget_noted_at: float | None = None

    def budgets(self, timeout: float = NOTE_TIMEOUT_S) -> list[BudgetStatus]:
        """The QPU-time budgets the jobs this client would submit now spend, with what is left
        of each this period (empty: no budget applies).

        Raises:
            NoOwnerAnswered: no owner answered within `timeout` seconds.
        """
        return fetch_budgets(self, timeout)

    def note_budgets(self, now_s: float | None = None) -> list[BudgetStatus]:
        """Log what is left of the budgets a submit spends (see the module docstring); the
        statuses logged (empty: none applies, or not due yet)."""
        now_s = time.monotonic() if now_s is None else now_s
        if self._budget_noted_at is not None and now_s - self._budget_noted_at < NOTE_EVERY_S:
            return []
        self._budget_noted_at = now_s
        found = _quiet_fetch(self, SDK_NOTE_TIMEOUT_S)
        for status in found:
            log.log(logging.WARNING if status.warn else logging.INFO, "%s", status.line())
        return found
