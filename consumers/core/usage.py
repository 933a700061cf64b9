"""`usage` (pure): the owner answers `qsched usage` from the ledger it folded (no stream scan).

An operator may ask about anyone; any other sender sees their own usage only (as `queue`
hides other users' jobs: `consumers.core.privacy`), whatever user they name. The period is
rounded out to the ledger's hours; the reply says which period it covers and from when the
owner still holds usage (older: ``qsched usage --from-log`` folds the log itself).
"""

from __future__ import annotations

from datetime import datetime

from consumers.core.command_types import Command, Done, Refused, is_operator
from consumers.core.ledger import Ledger
from consumers.core.state import OwnerState
from schemas.enums import ErrorCode
from schemas.policy import Policy
from schemas.reports import UsageReport


def usage_report(ledger: Ledger, given: Command, operator: bool) -> UsageReport:
    """The rows a `usage` command asks for, as `operator` (or not) may see them.

    Raises:
        Refused: the period ends before it starts.
    """
    command = given.command
    since, until = command.since, command.until
    if since is not None and until is not None and until <= since:
        raise Refused(
            ErrorCode.INVALID_SCHEMA,
            f"usage: --until {until.isoformat()} is not after --since {since.isoformat()}",
        )
    user = command.user if operator else given.user
    rows = ledger.report(
        since=since,
        until=until,
        by=command.by,
        account=command.account,
        user=user,
        job_class=command.job_class,
    )
    return UsageReport(
        rows=rows,
        since=ledger.floor(since) if since is not None else None,
        until=ledger.ceil(until) if until is not None else None,
        kept_from=ledger.kept_from,
        bucket_s=ledger.bucket_s,
    )


def usage(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """`usage`: the ledger's rows for the period, grouped and filtered as asked."""
    report = usage_report(state.ledger, given, is_operator(policy, given))
    return Done(f"{len(report.rows)} row(s)", reply={"usage": report})
