"""`qsched usage`: QPU time used, like Slurm's ``sreport``, as the owner's ledger has it.

The owner answers from the ledger it folded from the event log (the same after a failover):
jobs, runs, shots, QPU seconds, emulator seconds (lanes, never QPU time), mean queue wait and
preemptions, charged to each job's verified account. The owner keeps usage by the hour for
about three months; ``qsched events usage`` folds the log itself for any period, exactly.
A submitter who is not an operator sees their own usage only.
"""

from __future__ import annotations

import csv
import sys
from typing import Any

import click

from producers.cli import _client, _print_reply, json_option, timeout_option
from schemas.enums import CommandName
from schemas.reports import USAGE_FIGURES, UsageReport
from schemas.timespec import parse_moment
from schemas.wire import utc_now

BY_CHOICES = ("account", "user", "class", "day", "allocation")


def moment_option(name: str, doc: str) -> Any:
    """A ``--since``/``--until`` option: an ISO date or time (UTC if naive), ``now``, or a
    duration ago (``7d``); anything else exits 2 with one line."""

    def convert(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        if value is None:
            return None
        try:
            return parse_moment(value, utc_now())
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return click.option(name, callback=convert, metavar="TIME", help=doc)


def usage_options(f: Any) -> Any:
    """The filters and grouping `qsched usage` and `qsched events usage` share."""
    for option in reversed(
        [
            click.option("--account", help="Only this account."),
            click.option("--user", help="Only this user (operators; others see their own)."),
            click.option("--class", "job_class", help="Only this job class."),
            moment_option("--since", "From this time: 2026-12-01, 2026-12-01T08:00, now, 7d."),
            moment_option("--until", "Up to this time (same forms; default: now)."),
            click.option("--by", type=click.Choice(BY_CHOICES), help="One row per ..."),
            click.option("--csv", "as_csv", is_flag=True, help="CSV with a header line."),
        ]
    ):
        f = option(f)
    return f


@click.command("usage")
@usage_options
@json_option
@timeout_option
@click.pass_context
def usage(
    ctx: click.Context,
    account: str | None,
    user: str | None,
    job_class: str | None,
    since: Any,
    until: Any,
    by: str | None,
    as_csv: bool,
    as_json: bool,
    timeout: float,
) -> None:
    """QPU time used per account, user, class or day (like sreport): jobs, runs, shots, QPU
    seconds, emulator seconds, mean queue wait, preemptions. Periods are whole hours (UTC)."""
    with _client(ctx) as client:
        reply = client.control(
            CommandName.USAGE,
            account=account,
            user=user,
            job_class=job_class,
            since=since,
            until=until,
            by=by,
            timeout=timeout,
        )
    if not reply.ok or reply.usage is None:
        _print_reply(reply, as_json)
        return
    print_usage(reply.usage, as_json=as_json, as_csv=as_csv)


def print_usage(report: UsageReport, *, as_json: bool = False, as_csv: bool = False) -> None:
    """The report as one JSON object, CSV, or a table with the period it covers."""
    if as_json:
        click.echo(report.model_dump_json())
        return
    header, lines = report.table()
    if as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(lines)
        return
    since = report.since.isoformat() if report.since else "the start"
    until = report.until.isoformat() if report.until else "now"
    click.echo(f"QPU usage, {since} .. {until}")
    click.echo(plain_table(header, lines, len(header) - len(USAGE_FIGURES)))
    if (
        report.kept_from is not None
        and report.since is not None
        and report.since < report.kept_from
    ):
        click.echo(
            f"note: the owner holds usage from {report.kept_from.isoformat()} only; "
            "`qsched events usage` folds the whole log",
            err=True,
        )


def plain_table(header: list[str], lines: list[list[str]], keys: int) -> str:
    """An sreport-like table: a header, a rule, the rows; the first `keys` columns (the names
    rows are grouped by) left-aligned, the figures right-aligned; never cut, whatever the
    terminal's width (piped, it is read by scripts and people alike)."""
    widths = [max(len(row[i]) for row in (header, *lines)) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(w) if i < keys else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(cells) for cells in lines)])
