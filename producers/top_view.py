"""What `qsched top` draws: one frame of the QPU, built from the owner's replies (pure).

A frame fits the terminal it is drawn on (80x24 and up): every line is cut with an ellipsis at
the width, never wrapped, and the list of next jobs gets the rows the other parts leave. Below
the QPU's run, a row per emulator lane shows the job on it (or that it is free); under the
waiting counts, a line of the open sessions and where each stands (grace, holding the QPU...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from producers.session_text import phase_text
from schemas.budgets import BudgetStatus
from schemas.enums import QPUState
from schemas.envelope import Event
from schemas.reports import QueueEntry, RunningJob, SessionSummary, StatusReport

SHORT_ID = 8
EVENT_LINES = 5
MIN_ROWS = 3  # jobs of the queue shown before any event line
LANE_ROWS = 4  # emulator lanes shown one per row; more are summed up in the last row
STATE_STYLES = {
    QPUState.RUNNING: "bold green",
    QPUState.IDLE: "bold",
    QPUState.DOWN: "bold red",
    QPUState.PAUSED: "bold yellow",
    QPUState.DRAINING: "bold yellow",
    QPUState.CALIBRATING: "bold yellow",
    QPUState.PREEMPTING: "bold magenta",
}


@dataclass
class Frame:
    """What one refresh learned: the status, the next jobs, the last events, and any problem.

    Attributes:
        events_note: why there are no events to show (e.g. the log is for operators only).
        error: why the owner gave no status this time (e.g. no owner answered).
        budgets: the budgets the viewer's jobs spend (`producers.budgets.fetch_budgets`).
    """

    at: datetime
    status: StatusReport | None = None
    queue: list[QueueEntry] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    events_note: str | None = None
    error: str | None = None
    budgets: list[BudgetStatus] = field(default_factory=list)


def duration(seconds: float | None) -> str:
    """A short duration for a column: ``42s``, ``3m05s``, ``2h10m``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    s = max(round(seconds), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _line(text: Text | str) -> Text:
    line = text if isinstance(text, Text) else Text(text)
    line.no_wrap = True
    line.overflow = "ellipsis"
    return line


def _header(frame: Frame) -> Text:
    owner = frame.status.owner_id if frame.status else "no owner answered"
    line = Text("qsched top", style="bold")
    line.append(f"  {frame.at:%H:%M:%S} UTC  owner {owner}  (q quits)", style="dim")
    return _line(line)


def _qpu(status: StatusReport, now: datetime) -> Text:
    line = Text("QPU ")
    line.append(status.qpu_state.value, style=STATE_STYLES.get(status.qpu_state, "bold"))
    line.append(f"  mode {status.mode.value}  epoch {status.epoch}")
    if status.calibration_valid_until is not None:
        left_s = (status.calibration_valid_until - now).total_seconds()
        window = f"window {duration(left_s)} left" if left_s > 0 else "window EXPIRED"
        line.append(f"  {window}", style="yellow" if left_s < 600 else "")
    line.append(f"  {status.backend}", style="dim")
    return _line(line)


def _running(status: StatusReport, now: datetime, width: int) -> RenderableType:
    run = status.running
    if run is None:
        return _line(Text(f"no job running  last decision: {status.last_decision or '-'}"))
    return _run_row(run, now, width, "running")


def _run_row(run: RunningJob, now: datetime, width: int, where: str) -> Table:
    """One run: where it is, the job, a progress bar, shots and time so far."""
    bar_width = max(min(width // 4, 24), 8)
    info_width = 24  # "12345/12345 shots  1h02m"
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True, overflow="ellipsis", max_width=width - bar_width - info_width - 2)
    grid.add_column(width=bar_width)
    grid.add_column(no_wrap=True, overflow="ellipsis", min_width=info_width)
    elapsed = duration((now - run.started_at).total_seconds())
    label = f"{where} {run.job_id[:SHORT_ID]} {run.job_class} {run.user or ''}".rstrip()
    done = min(run.shots_done, run.shots)
    grid.add_row(
        Text(label, style="bold" if where == "running" else ""),
        ProgressBar(total=max(run.shots, 1), completed=done, complete_style="green"),
        Text(f"{done}/{run.shots} shots  {elapsed}"),
    )
    return grid


def _lanes(status: StatusReport, now: datetime, width: int) -> list[RenderableType]:
    """A row per emulator lane (its job, or free); past `LANE_ROWS` lanes, the rest summed up."""
    names = sorted(status.lanes, key=_lane_number)
    shown = names if len(names) <= LANE_ROWS else names[: LANE_ROWS - 1]
    rows: list[RenderableType] = []
    for name in shown:
        run = status.lanes[name]
        rows.append(_line(f"{name} free") if run is None else _run_row(run, now, width, name))
    rest = names[len(shown) :]
    if rest:
        busy = sum(1 for name in rest if status.lanes[name] is not None)
        rows.append(_line(f"{len(rest)} more lanes: {busy} busy, {len(rest) - busy} free"))
    return rows


def _lane_number(name: str) -> tuple[int, str]:
    """``emulator-10`` after ``emulator-9``."""
    tail = name.rsplit("-", 1)[-1]
    return (int(tail) if tail.isdigit() else 0, name)


def _eta(entry: QueueEntry) -> str:
    if entry.position == 0:
        return "running"
    if entry.held is not None:
        return entry.held.removeprefix("held: ")
    if entry.eta_s is None:
        return entry.eta_unknown or "unknown"  # e.g. "paused": what the QPU does instead
    return duration(entry.eta_s)


def _queue(entries: list[QueueEntry], rows: int) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False, padding=(0, 1), expand=True)
    for name, justify, width in (
        ("pos", "right", 3),
        ("job", "left", SHORT_ID),
        ("class", "left", 11),
        ("user", "left", 9),
        ("prio", "right", 4),
        ("shots", "right", 6),
    ):
        table.add_column(name, justify=justify, width=width, no_wrap=True, overflow="ellipsis")  # type: ignore[arg-type]
    table.add_column("eta / held", no_wrap=True, overflow="ellipsis", ratio=1)
    waiting = [e for e in entries if e.position != 0]
    for entry in waiting[:rows]:
        table.add_row(
            "-" if entry.position is None else str(entry.position),
            entry.job_id[:SHORT_ID],
            entry.job_class,
            entry.user,
            str(entry.priority),
            str(entry.shots),
            _eta(entry),
        )
    if not waiting:
        table.add_row("", "", "no job waiting", "", "", "", "")
    return table


def _counts(title: str, counts: dict[str, int], blank: str) -> Text:
    line = Text()
    line.append(f"{title:<9}", style="bold")
    shown = [(k or blank, v) for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    line.append("  ".join(f"{name} {count}" for name, count in shown) or "none")
    return _line(line)


def _sessions(sessions: list[SessionSummary]) -> Text:
    """The open sessions on one line: id, user, phase (grace, holding the QPU...), queued."""
    line = Text()
    line.append(f"{'sessions':<9}", style="bold")
    shown = []
    for session in sessions:
        waiting = f" {session.waiting} queued" if session.waiting else ""
        phase = phase_text(session.phase, session.left_s, session.ended_reason)
        shown.append(f"{session.session_id[:SHORT_ID]} {session.user or '?'} {phase}{waiting}")
    line.append("  ".join(shown))
    return _line(line)


def _event(event: Event) -> Text:
    line = Text(f"{event.at:%H:%M:%S} ", style="dim")
    line.append(f"{event.topic:<17}", style="bold")
    parts = [(event.job_id or "")[:SHORT_ID], event.job_class or "", event.reason or ""]
    line.append(" " + " ".join(p for p in parts if p))
    return _line(line)


def _time_owned(status: StatusReport, budgets: list[BudgetStatus]) -> list[Text]:
    """The reservation open now or next, and the viewer's budgets (yellow from `warn_at`)."""
    lines = [_line(Text(f"reservation {r.line()}", style="cyan")) for r in status.reservations[:1]]
    for budget in budgets[:2]:
        lines.append(_line(Text(budget.line(), style="yellow" if budget.warn else "dim")))
    return lines


def render(frame: Frame, width: int, height: int) -> RenderableType:
    """The frame for a `width` x `height` terminal (nothing wraps; the queue gets what is left)."""
    parts: list[RenderableType] = [_header(frame)]
    status = frame.status
    if frame.error:
        parts.append(_line(Text(frame.error, style="red")))
    if status is None:
        return Group(*parts)
    parts.append(_qpu(status, frame.at))
    if status.mode_message:
        parts.append(_line(Text(f"{status.mode.value}: {status.mode_message}", style="yellow")))
    parts.extend(_time_owned(status, frame.budgets))
    parts.append(_running(status, frame.at, width))
    parts.extend(_lanes(status, frame.at, width))
    # below: a rule and the queue's header, a rule and two lines of counts, and the last line
    # stays free (nothing scrolls); the events get what is left above MIN_ROWS jobs, up to 5
    sessions = 1 if status.sessions else 0  # a line of open sessions under the counts
    room = height - (len(parts) + 2 + 3 + sessions + 1)
    event_lines = min(EVENT_LINES, room - MIN_ROWS - 1) if frame.events or frame.events_note else 0
    event_lines = max(event_lines, 0)
    rows = max(room - (event_lines + 1 if event_lines else 0), 1)
    parts.append(Rule("next jobs", align="left", style="dim"))
    parts.append(_queue(frame.queue, rows))
    parts.append(Rule("waiting", align="left", style="dim"))
    parts.append(_counts("classes", status.queue_depth, "-"))
    parts.append(_counts("accounts", status.waiting_by_account, "(none)"))
    if sessions:
        parts.append(_sessions(status.sessions))
    if event_lines:
        parts.append(Rule("last events", align="left", style="dim"))
        shown = event_lines
        if frame.events_note:
            parts.append(_line(Text(frame.events_note, style="dim")))
            shown -= 1
        if shown > 0:
            parts.extend(_event(e) for e in frame.events[-shown:])
    return Group(*parts)
