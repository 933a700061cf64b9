"""`qsched events usage`: the QPU-time ledger folded from the event log itself, for any period.

The owner answers `qsched usage` from the ledger in its state (hours, about three months); this
folds the log from its first record with the owner's own `OwnerState.apply`, into a ledger of
one-second buckets and no horizon, so any period is exact. Nothing here reads an event itself:
the ledger is what `apply` charges (`consumers.core.ledger`). When retention has removed the
start of the log, usage before the first record left is not counted.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable
from datetime import datetime

import click

from brokers.cli import settings_of
from consumers.core.ledger import Ledger
from consumers.core.state import OwnerState
from consumers.tools.eventlog.reader import LogRecord
from consumers.tools.eventlog.source import log_records
from schemas.reports import UsageReport
from schemas.timespec import parse_moment

BY_CHOICES = ("account", "user", "class", "day", "allocation")


def fold_ledger(records: Iterable[LogRecord]) -> Ledger:
    """The ledger of the whole log: every record folded with `OwnerState.apply`."""
    state = OwnerState(ledger=Ledger(bucket_s=1, keep_s=None))
    for record in records:
        state.apply(record.event)
    return state.ledger


def _moment(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_moment(value, datetime.now().astimezone())
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("usage")
@click.option("--account", help="Only this account.")
@click.option("--user", help="Only this user.")
@click.option("--class", "job_class", help="Only this job class.")
@click.option("--since", callback=_moment, metavar="TIME", help="From: 2026-12-01, now, 7d.")
@click.option("--until", callback=_moment, metavar="TIME", help="Up to this time.")
@click.option("--by", type=click.Choice(BY_CHOICES), help="One row per ...")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header line.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.pass_context
def usage_from_log(
    ctx: click.Context,
    account: str | None,
    user: str | None,
    job_class: str | None,
    since: datetime | None,
    until: datetime | None,
    by: str | None,
    as_csv: bool,
    as_json: bool,
) -> None:
    """QPU usage from the whole event log (exact, any period; operators): the same rows as
    `qsched usage`, folded here instead of asked of the owner."""
    if since is not None and until is not None and until <= since:
        raise click.BadParameter("--until is not after --since")
    with log_records(settings_of(ctx), "qsched-events-usage") as records:
        ledger = fold_ledger(records)
    rows = ledger.report(
        since=since, until=until, by=by, account=account, user=user, job_class=job_class
    )
    report = UsageReport(rows=rows, since=since, until=until, bucket_s=1)
    if as_json:
        click.echo(report.model_dump_json())
        return
    header, lines = report.table()
    writer = csv.writer(sys.stdout, lineterminator="\n", delimiter="," if as_csv else "\t")
    writer.writerow(header)
    writer.writerows(lines)
