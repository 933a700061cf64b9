"""Per-job control in the spirit of ``scontrol``: `qsched show|hold|release|update|requeue JOB`.

JOB is a job id or its first 8 (or more) characters, resolved by the owner among the jobs the
sender may see (never by reading the event log here). The owner decides who may do what (see
`consumers.core.jobctl`): the job's submitter or an operator; a submitter may only lower a
priority, pick a class it may submit to, and cannot release an operator's hold. Every command is
logged with its sender (`qsched history JOB` lists them). Refusals exit 1, no owner exits 3.
"""

from __future__ import annotations

import click

from brokers.cliparams import JOB_CLASS, JOB_ID
from producers.cli import _client, _print_reply, json_option, timeout_option
from producers.client import QPUClient
from producers.errors import CommandRefused, NoOwnerAnswered
from producers.jobinfo import FULL_ID_LENGTH, fetch_job_events, show_lines, show_record
from producers.results import fetch_history_from_owner
from producers.views import emit_json
from schemas.control import ControlReply
from schemas.enums import CommandName
from schemas.envelope import Event


@click.command("show")
@click.argument("job_id", metavar="JOB", type=JOB_ID)
@json_option
@timeout_option
@click.pass_context
def show(ctx: click.Context, job_id: str, as_json: bool, timeout: float) -> None:
    """Everything about one job, waiting, running or finished: state, class, priority, user,
    times, place in line and ETA or hold reason, shots done, result, trace id, attempts, and the
    commands sent about it (who, when). With --json, one object."""
    with _client(ctx) as client:
        try:
            reply: ControlReply | None = client.control(
                CommandName.SHOW, job_id=job_id, timeout=timeout
            )
        except NoOwnerAnswered:
            if len(job_id) < FULL_ID_LENGTH:
                raise NoOwnerAnswered(
                    f"no QPU owner answered to resolve {job_id!r}",
                    hint="start one with `qsched owner`; without an owner, operators give the "
                    "whole job id to read the event log",
                ) from None
            reply = None  # the log still tells how it ended, or that it waits (operators)
        full = reply.job_id or job_id if reply is not None else job_id
        events = _events_of(client, full, from_owner=reply is not None)
    if reply is not None and not reply.ok and not events:
        raise CommandRefused(f"refused: {reply.message}", reply.error)
    record = show_record(full, reply.job if reply is not None else None, events or [])
    if reply is not None and reply.job is None and "state" not in record:
        record["owner_says"] = reply.message  # e.g. how it ended, when the log is not readable
    if as_json:
        emit_json(record)
    else:
        click.echo("\n".join(show_lines(record)))


def _events_of(client: QPUClient, job_id: str, from_owner: bool) -> list[Event]:
    """The job's events: asked of the owner (which reads them at the offsets it keeps), else
    read from the log (operators, with no owner answering)."""
    if not from_owner:
        return fetch_job_events(client, job_id) or []
    try:
        return fetch_history_from_owner(client, job_id)
    except CommandRefused:
        return []


def _job_command(name: CommandName, doc: str) -> click.Command:
    @click.command(name.value, help=doc)
    @click.argument("job_id", metavar="JOB", type=JOB_ID)
    @json_option
    @timeout_option
    @click.pass_context
    def command(ctx: click.Context, job_id: str, as_json: bool, timeout: float) -> None:
        with _client(ctx) as client:
            _print_reply(client.control(name, job_id=job_id, timeout=timeout), as_json)

    return command


hold = _job_command(
    CommandName.HOLD,
    "Hold a waiting job until `qsched release` (it keeps its place and age). An operator's "
    "hold is an operator hold, which the job's submitter cannot release.",
)
release = _job_command(
    CommandName.RELEASE,
    "Release a held job; a submitter can release its own hold, an operator any.",
)
requeue = _job_command(
    CommandName.REQUEUE,
    "Put a running job, or one that ended ERROR, back in line to run again from its first shot "
    "(a running job's counts so far are dropped; `qsched ctl preempt` keeps them). Its "
    "submitter or an operator.",
)


@click.command("update")
@click.argument("job_id", metavar="JOB", type=JOB_ID)
@click.option(
    "--priority",
    type=click.IntRange(0, 9),
    help="New priority 0-9 (a submitter may only lower it).",
)
@click.option(
    "--class",
    "job_class",
    type=JOB_CLASS,
    help="New job class (a submitter: one its policy ACL allows).",
)
@json_option
@timeout_option
@click.pass_context
def update(
    ctx: click.Context,
    job_id: str,
    priority: int | None,
    job_class: str | None,
    as_json: bool,
    timeout: float,
) -> None:
    """Change a waiting job's priority or class: its submitter within the policy (lower the
    priority, a class it may submit to), an operator to anything valid."""
    if priority is None and job_class is None:
        raise click.UsageError("give --priority or --class")
    with _client(ctx) as client:
        reply = client.control(
            CommandName.UPDATE,
            job_id=job_id,
            priority=priority,
            job_class=job_class,
            timeout=timeout,
        )
        _print_reply(reply, as_json)
