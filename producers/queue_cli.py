"""`qsched queue`: the owner's backlog in policy order, in the spirit of Slurm's ``squeue``.

Every waiting job with its position (1 starts next), estimated start (ETA) or the reason it is
held, the session it belongs to and how that session stands (in grace, holding the QPU, idle,
ended...), and with ``--explain`` the factors of its place in the order (like ``sprio``). Sequences
are never listed; a submitter who is not an operator sees other users' jobs as ``(hidden)``
(place, class, shots and ETA, no id, user, account or factors). ``--json`` prints one JSON object per job (JSON lines).
"""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.table import Table

from brokers.cliparams import JOB_CLASS, JOB_ID
from producers.budgets import budget_notes
from producers.cli import _client
from producers.errors import QschedError, ResultTimeout
from producers.session_text import phase_text
from schemas.reports import QueueEntry

console = Console()


def _eta(entry: QueueEntry) -> str:
    if entry.position == 0:
        return "running"
    if entry.held is not None:
        return entry.held
    if entry.eta_s is None:
        return entry.eta_unknown or "unknown"  # e.g. "paused": what the QPU does instead
    return f"{entry.eta_s:.0f} s"


def _session(entry: QueueEntry) -> str:
    if not entry.session_id:
        return ""
    return f"{entry.session_id[:8]} {phase_text(entry.session_phase, entry.session_left_s)}"


@click.command("queue")
@click.option("--user", help="Only this user's jobs.")
@click.option("--class", "job_class", type=JOB_CLASS, help="Only this job class.")
@click.option("--job", "job_id", type=JOB_ID, help="Only this job.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many jobs.")
@click.option("--explain", is_flag=True, help="Show the factors of each job's place in the order.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per job (JSON lines).")
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Seconds to wait.")
@click.pass_context
def queue(
    ctx: click.Context,
    user: str | None,
    job_class: str | None,
    job_id: str | None,
    limit: int | None,
    explain: bool,
    as_json: bool,
    timeout: float,
) -> None:
    """List waiting (and the running) jobs in the order the QPU will run them."""
    try:
        with _client(ctx) as client:
            entries = client.queue(
                user=user, job_class=job_class, job_id=job_id, limit=limit, timeout=timeout
            )
    except ResultTimeout as exc:
        click.echo(f"qsched: {exc}", err=True)
        sys.exit(3)
    except QschedError as exc:
        click.echo(f"qsched: {exc}", err=True)
        sys.exit(1)
    if as_json:
        for entry in entries:
            click.echo(entry.model_dump_json())
        return
    table = Table(title=f"{len(entries)} job(s)")
    for column in ("pos", "job", "class", "user", "prio", "shots", "eta / held"):
        table.add_column(column)
    sessions = any(entry.session_id for entry in entries)
    if sessions:
        table.add_column("session", no_wrap=True, overflow="ellipsis")
    for entry in entries:
        row = [
            "-" if entry.position is None else str(entry.position),
            entry.job_id[:8],
            entry.job_class,
            entry.user,
            str(entry.priority),
            str(entry.shots),
            _eta(entry),
        ]
        if sessions:
            row.append(_session(entry))
        table.add_row(*row)
    console.print(table)
    if explain:
        print_factors(entries)
    with _client(ctx) as client:
        for note in budget_notes(client):
            click.echo(note)


# The order key's factors (`consumers.core.order_key`), as columns narrow enough for 80
# characters, and what each one means, in the order they are compared.
FACTOR_COLUMNS = {
    "class_rank": ("rank", "class_rank, lower first"),
    "class_usage_per_weight": ("class/w", "class_usage_per_weight, lower first"),
    "session_grace": ("grace", "session_grace, yes first"),
    "site_term": ("site", "site_term, higher first"),
    "effective_priority": ("prio", "effective_priority (aged), higher first"),
    "account_usage_s": ("acct s", "account_usage_s, lower first"),
    "user_usage_s": ("user s", "user_usage_s, lower first"),
}


def _factor(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:g}" if isinstance(value, float) else str(value)


def print_factors(entries: list[QueueEntry]) -> None:
    """The factors of each job's place, one column each (like ``sprio``), never cut: short
    headings whose full names a legend under the table gives (usage in decayed QPU seconds)."""
    names = list(FACTOR_COLUMNS)
    names += sorted({k for e in entries for k in e.factors} - set(FACTOR_COLUMNS))
    table = Table(title="factors, compared left to right (then age)", box=None, pad_edge=False)
    table.add_column("job", no_wrap=True)
    for name in names:
        table.add_column(FACTOR_COLUMNS.get(name, (name, ""))[0], justify="right", no_wrap=True)
    for entry in entries:
        cells = [_factor(entry.factors[n]) if n in entry.factors else "-" for n in names]
        table.add_row(entry.job_id[:8], *cells)
    console.print(table)
    legend = "; ".join(f"{short}: {meaning}" for short, meaning in FACTOR_COLUMNS.values())
    console.print(legend, highlight=False)
