"""What the user commands print: JSON lines for scripts, short lines and tables for people.

JSON shape (``--json`` on every command): JSON lines, one object per job, event or reply, the
model's own fields (`JobResult`, `StatusReport`, `ControlReply`, ``{"job_id": ...}`` for a job
just submitted); a failure is one ``{"error": {...}}`` object.
Terminal views never wrap: lines are cut with an ellipsis at the terminal's width.
"""

from __future__ import annotations

import json
from typing import Any

import click
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from rich.text import Text

from producers.session_text import summary_text
from schemas.enums import QPUState
from schemas.jobs import JobResult
from schemas.reports import StatusReport

SHORT_ID = 8
SHOWN_COUNTS = 8
SHOWN_HELD = 10
ALERT_STATES = (QPUState.DOWN, QPUState.PAUSED, QPUState.DRAINING, QPUState.CALIBRATING)


def emit_json(obj: BaseModel | dict[str, Any]) -> None:
    """Print one JSON line on stdout."""
    if isinstance(obj, BaseModel):
        click.echo(obj.model_dump_json())
    else:
        click.echo(json.dumps(obj))


def short(job_id: str) -> str:
    """The first characters of a job id, which `result` and `cancel` accept."""
    return job_id[:SHORT_ID]


def _line(console: Console, text: str | Text) -> None:
    console.print(text, no_wrap=True, overflow="ellipsis", crop=True, highlight=False)


def print_status(status: StatusReport, console: Console) -> None:
    """The status for a terminal: QPU, mode, running job, queues, holds; no line wraps."""
    state = status.qpu_state
    style = (
        "bold red" if state is QPUState.DOWN else "bold yellow" if state in ALERT_STATES else "bold"
    )
    head = Text("QPU ")
    head.append(state.value, style=style)
    head.append(f"  mode {status.mode.value}  backend {status.backend}  epoch {status.epoch}")
    _line(console, head)
    if status.mode_message:
        _line(console, f"{status.mode.value}: {status.mode_message}")
    if state is QPUState.DOWN:
        _line(console, Text("the QPU backend is down: jobs wait until it is back", style="red"))
    for reservation in status.reservations[:5]:
        _line(console, f"reservation {reservation.line()}")
    if status.calibration_pending:
        waits_for = f"{short(status.running.job_id)} ends" if status.running else "the QPU is free"
        _line(
            console,
            Text(
                f"calibration pending: starts when {waits_for}; no other job starts first",
                style="yellow",
            ),
        )
    if status.running:
        r = status.running
        _line(
            console,
            f"running {short(r.job_id)}  {r.job_class}  {r.shots} shots  "
            f"since {r.started_at:%H:%M:%S}  user {r.user or '?'}",
        )
    for lane, job in status.lanes.items():
        what = (
            f"{short(job.job_id)}  {job.job_class}  {job.shots} shots  since "
            f"{job.started_at:%H:%M:%S}  user {job.user or '?'}"
            if job
            else "free"
        )
        _line(console, f"{lane}  {what}")
    table = Table(box=None, pad_edge=False, show_edge=False)
    table.add_column("class")
    table.add_column("waiting", justify="right")
    table.add_column("held", justify="right")
    for job_class, depth in status.queue_depth.items():
        table.add_row(job_class, str(depth), str(status.held.get(job_class, 0)))
    console.print(table)
    if status.held_reasons:
        _line(console, "held:")
        for job_id, reason in list(status.held_reasons.items())[:SHOWN_HELD]:
            _line(console, f"  {short(job_id)}  {reason.removeprefix('held: ')}")
    for session in status.sessions[:SHOWN_HELD]:
        ends = f", ends {session.ends_at:%H:%M:%S}" if session.ends_at else ""
        _line(console, f"{summary_text(session)} since {session.opened_at:%H:%M:%S}{ends}")
    if status.last_decision:
        _line(console, f"last decision: {status.last_decision}")
    _line(console, f"owner {status.owner_id}")
    for standby in status.standbys:
        pid = f" pid {standby.pid}" if standby.pid is not None else ""
        _line(
            console,
            f"standby {standby.owner_id} on {standby.host}{pid}, "
            f"last heartbeat {standby.last_heartbeat:%H:%M:%S}",
        )
    if not status.standbys:
        _line(console, "no standby owner: nothing takes over if this owner stops")


def print_result(result: JobResult) -> None:
    """A result for a terminal: id, state, shots, error, the most frequent bitstrings."""
    measured = sum(result.counts.values())
    click.echo(
        f"{result.job_id} {result.state.value} ({result.job_class}, {measured}/{result.shots} shots)"
    )
    if result.lane:
        click.echo(f"  ran on {result.lane} (specs {result.specs}, epoch {result.epoch})")
    if result.error:
        click.echo(f"  {result.error.code.value}: {result.error.message}")
    ranked = sorted(result.counts.items(), key=lambda kv: -kv[1])
    for bits, count in ranked[:SHOWN_COUNTS]:
        click.echo(f"  {bits} {count}")
