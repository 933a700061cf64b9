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
from schemas.messages import QueueEntry

console = Console()


def _eta(entry: QueueEntry) -> str:
    if entry.position == 0:
        return "running"
    if entry.held is not None:
        return entry.held
    if entry.eta_s is None:
        return "unknown"
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
    if explain:
        table.add_column("factors")
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
        if explain:
            row.append(", ".join(f"{k}={v}" for k, v in entry.factors.items()))
        table.add_row(*row)
    console.print(table)
    with _client(ctx) as client:
        for note in budget_notes(client):
            click.echo(note)
