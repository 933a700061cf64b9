"""`qsched events tail|replay|export` and `qsched history JOB`: the event log for operators
and users."""

from __future__ import annotations

import json
import sys
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import click

from brokers.ask import ask_owner
from brokers.cli import settings_of
from brokers.cliparams import JOB_ID
from brokers.connection import Connection, connect, translated
from brokers.errors import ChannelClosed
from brokers.settings import Settings
from brokers.topology import Topology, build_topology
from consumers.tools.eventlog.describe import event_record, job_histories, summary
from consumers.tools.eventlog.errors import AmbiguousJob, EventLogError, JobNotFound
from consumers.tools.eventlog.export import write_export
from consumers.tools.eventlog.filters import EventFilter
from consumers.tools.eventlog.reader import LogRecord, fetch_end_offset, parse_bound, read_log
from consumers.tools.eventlog.replay import render, replay
from consumers.tools.eventlog.sessions import summary_entries, with_session
from consumers.tools.eventlog.shapes import JobHistory
from consumers.tools.eventlog.source import log_records
from consumers.tools.eventlog.usage import usage_from_log
from schemas.control import ControlCommand
from schemas.enums import CommandName, ErrorCode
from schemas.errors import PolicyError
from schemas.policy import load_policy


def _topology(settings: Settings) -> Topology:
    return build_topology(settings, load_policy(settings.policy_file))


def _stream(settings: Settings) -> str:
    return _topology(settings).events_stream


@contextmanager
def _connection(settings: Settings, name: str) -> Iterator[Connection]:
    conn = connect(settings.amqp_url, name=name)
    try:
        yield conn
    finally:
        if conn.is_open:
            conn.close()


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except EventLogError as exc:
        click.echo(f"qsched: {exc}", err=True)
        sys.exit(1)


def format_line(record: LogRecord, colour: bool = False) -> str:
    """One human line for an event: time, topic, job, class, user, what it says, why."""
    event = record.event
    topic = click.style(f"{event.topic:<22}", bold=True) if colour else f"{event.topic:<22}"
    job = (event.job_id or "")[:8]
    what = summary(event)
    why = f" — {event.reason}" if event.reason else ""
    return (
        f"{event.at.strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]} {record.offset:>7} {topic} "
        f"{job:<8} {event.job_class or '':<12} {event.user or '':<10} {what}{why}"
    ).rstrip()


@click.group("events")
def events() -> None:
    """Read the event log: tail it live, replay the owner's state at a point, or export it
    (JSON lines, Perfetto, HTML timeline)."""


events.add_command(usage_from_log)


@events.command("tail")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events as they come.")
@click.option("-n", "--lines", default=20, show_default=True, help="How many past events first.")
@click.option("--job", help="A job id or its first characters.")
@click.option("--user")
@click.option("--class", "job_class")
@click.option("--topic", help="A glob over topics, e.g. 'job.*' or 'qpu.*'.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def tail(
    ctx: click.Context,
    follow: bool,
    lines: int,
    job: str | None,
    user: str | None,
    job_class: str | None,
    topic: str | None,
    as_json: bool,
) -> None:
    """Print the last events of the log (filtered), then new ones with --follow."""
    settings = settings_of(ctx)
    stream = _stream(settings)
    keep = EventFilter(job=job, user=user, job_class=job_class, topic=topic)
    colour = sys.stdout.isatty() and not as_json

    def show(record: LogRecord) -> None:
        line = json.dumps(event_record(record.event, record.offset)) if as_json else None
        click.echo(line or format_line(record, colour))

    with _errors(), _connection(settings, "qsched-events-tail") as ch:
        end = fetch_end_offset(ch, stream)
        recent: deque[LogRecord] = deque(maxlen=max(lines, 0))
        if end is not None:
            for record in read_log(ch, stream, end=end, max_bytes=settings.log_max_bytes):
                if keep(record.event):
                    recent.append(record)
        for record in recent:
            show(record)
        if not follow:
            return
        start = 0 if end is None else end + 1
        try:
            for record in read_log(
                ch, stream, start, follow=True, max_bytes=settings.log_max_bytes
            ):
                if keep(record.event):
                    show(record)
                    sys.stdout.flush()
        except KeyboardInterrupt:
            return


@events.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "perfetto", "html"]),
    default="jsonl",
    show_default=True,
)
@click.option("--from", "from_", help="First stream offset or ISO time (default: the first).")
@click.option("--to", help="Last stream offset or ISO time (default: the last one now).")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), required=True)
@click.pass_context
def export(ctx: click.Context, fmt: str, from_: str | None, to: str | None, output: Path) -> None:
    """Export the log (or a slice of it) to a file; '-o -' writes to stdout."""
    settings = settings_of(ctx)
    with _errors(), _connection(settings, "qsched-events-export") as ch:
        records = read_log(
            ch,
            _stream(settings),
            parse_bound(from_),
            parse_bound(to),
            max_bytes=settings.log_max_bytes,
        )
        if str(output) == "-":
            count = write_export(records, fmt, sys.stdout)
        else:
            partial = output.with_name(output.name + ".part")  # a failed export leaves no file
            try:
                with open(partial, "w", encoding="utf-8") as out:
                    count = write_export(records, fmt, out)
                partial.replace(output)
            finally:
                partial.unlink(missing_ok=True)
    if str(output) != "-":
        click.echo(f"{count} events → {output} ({fmt})", err=True)


@events.command("replay")
@click.option("--from", "from_", help="Also show the state just before this offset or ISO time.")
@click.option("--to", help="Show the state after this offset or ISO time (default: now).")
@click.option(
    "--policy",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Policy the owner ran under (usage half-life, queue order); default: the settings'.",
)
@click.option("--jobs", is_flag=True, help="List the waiting jobs in policy order too.")
@click.option(
    "--explain",
    is_flag=True,
    help="List every event the state ignored (stale term, unknown job...) with why.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per state.")
@click.pass_context
def replay_command(
    ctx: click.Context,
    from_: str | None,
    to: str | None,
    policy: Path | None,
    jobs: bool,
    explain: bool,
    as_json: bool,
) -> None:
    """Rebuild the owner's state from the log with the owner's own `apply` and print what it was
    at --to (and at --from): QPU state, running job, waiting jobs by class, usage per account and
    user; with --explain, each event the fold ignored and why."""
    settings = settings_of(ctx)
    try:
        start, end = parse_bound(from_), parse_bound(to)
    except EventLogError as exc:
        raise click.BadParameter(str(exc)) from None
    try:
        the_policy = load_policy(policy or settings.policy_file)
    except PolicyError as exc:
        raise click.BadParameter(str(exc), param_hint="--policy") from None
    with log_records(settings, "qsched-events-replay", None, end) as records:
        points = replay(
            records,
            the_policy,
            start,
            end if isinstance(end, datetime) else None,
            jobs=jobs,
            explain=explain,
        )
    for point in points:
        if as_json:
            click.echo(json.dumps({"state": point.label} | point.report))
        else:
            click.echo(render(point))


@click.command("history")
@click.argument("job", type=JOB_ID)
@click.option("--from", "from_", help="Read the log from this offset or ISO time (operators).")
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds to wait for the QPU owner's answer.",
)
@click.pass_context
def history(ctx: click.Context, job: str, from_: str | None, as_json: bool, timeout: float) -> None:
    """Every event of one job (its id; the first 8 characters are enough), with the time between
    them, the reasons given, and its trace id.

    The owner answers for the job's submitter and for operators, reading only that job's
    stretch of the log. With --from, or when no owner answers, operators read the log itself.
    """
    settings = settings_of(ctx)
    with _errors():
        asked = _ask_owner(settings, job, timeout) if from_ is None else None
        only = asked if isinstance(asked, JobHistory) else None
        if only is None:
            try:
                with translated("read the event log"):
                    only = _history_from_log(settings, job, from_)
            except ChannelClosed as exc:
                if asked is None:  # no owner, and the log is for operators only
                    raise EventLogError(
                        "no QPU owner answered and this user may not read the event log"
                    ) from exc
                raise EventLogError(asked) from exc
    if as_json:
        click.echo(json.dumps(history_record(only), indent=2))
    else:
        print_history(only, sys.stdout)


def _ask_owner(settings: Settings, job: str, timeout_s: float) -> JobHistory | str | None:
    """The job's history from the owner; a refusal's message (for an unknown job: operators may
    still find it in the log); None when no owner answered.

    Raises:
        EventLogError: the owner refused (another user's job, an ambiguous prefix).
    """
    command = ControlCommand(command=CommandName.HISTORY, job_id=job)
    reply = ask_owner(settings, _topology(settings), command, timeout_s)
    if reply is None:
        return None
    if not reply.ok:
        if reply.error is not None and reply.error.code is ErrorCode.UNKNOWN_JOB:
            if "matches" in reply.message:
                raise AmbiguousJob(reply.message)
            return reply.message
        raise EventLogError(f"refused: {reply.message}")
    events = reply.history or []
    found = job_histories(events, events[0].job_id or job, reply.ignored) if events else {}
    if len(found) != 1:
        return f"the owner sent no events of job {job}"
    only = next(iter(found.values()))
    if reply.session is not None:  # the session's events lie outside the job's stretch
        only.session_id = reply.session.session_id
        with_session(only, summary_entries(reply.session))
    return only


def _history_from_log(settings: Settings, job: str, from_: str | None) -> JobHistory:
    """The job's history read from the log (operators: the log is theirs to read)."""
    with _connection(settings, "qsched-history") as ch:
        found = job_histories(
            (
                r.event
                for r in read_log(
                    ch, _stream(settings), parse_bound(from_), max_bytes=settings.log_max_bytes
                )
            ),
            job,
        )
    if not found:
        raise JobNotFound(f"no job {job!r} in the event log")
    if len(found) > 1:
        raise AmbiguousJob(f"{job!r} matches {len(found)} jobs: {', '.join(sorted(found))}")
    (only,) = found.values()
    return only


def history_record(job: JobHistory) -> dict[str, Any]:
    """A job's history as a JSON-ready dict."""
    entries: list[dict[str, Any]] = []
    previous = None
    for entry in job.entries:
        entries.append(
            {
                "at": entry.at.isoformat(),
                "since_previous_s": (entry.at - previous).total_seconds() if previous else None,
                "topic": entry.topic,
                "summary": entry.summary,
                "reason": entry.reason,
                "ignored": entry.ignored,
            }
        )
        previous = entry.at
    return {
        "job_id": job.job_id,
        "job_class": job.job_class,
        "user": job.user,
        "final_state": job.final_state,
        "trace_id": job.trace_id,
        "session_id": job.session_id,
        "waited_s": job.waited_s(),
        "total_s": job.total_s(),
        "events": entries,
    }


def print_history(job: JobHistory, out: TextIO) -> None:
    """A job's history as aligned text."""
    out.write(
        f"job {job.job_id}  class {job.job_class or '?'}  user {job.user or '?'}  "
        f"final {job.final_state or '(not yet)'}\n"
        f"trace {job.trace_id or '(not recorded in the log)'}\n"
    )
    if job.session_id:
        out.write(f"session {job.session_id}\n")
    previous = None
    for entry in job.entries:
        delta = f"+{(entry.at - previous).total_seconds():.3f}s" if previous else ""
        line = (
            f"{entry.at.strftime('%H:%M:%S.%f')[:-3]} {delta:>11} {entry.topic:<18} {entry.summary}"
        )
        if entry.reason:
            line += f"\n{'':<24}why: {entry.reason}"
        if entry.ignored:
            line += f"\n{'':<24}ignored by the owner's state: {entry.ignored}"
        out.write(line.rstrip() + "\n")
        previous = entry.at
    waited, total = job.waited_s(), job.total_s()
    if waited is not None or total is not None:
        parts = [f"waited {waited:.3f}s before its first start" if waited is not None else ""]
        parts.append(f"{total:.3f}s from arrival to its end" if total is not None else "")
        out.write("; ".join(p for p in parts if p) + "\n")
