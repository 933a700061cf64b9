"""User and operator commands: `qsched submit`, `result`, `status`, `cancel`, `ctl ...`.

Each prints short lines or a table in a terminal and JSON lines with ``--json`` (see
`producers.views`). Failures are raised, and the root command (`brokers.cli`) turns them into one
line with a hint and an exit code (0 ok, 1 error, 2 usage, 3 timeout or no owner, 130 Ctrl-C).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from brokers.cli import settings_of
from brokers.cliparams import JOB_CLASS, JOB_ID
from producers.budgets import budget_notes
from producers.client import QPUClient
from producers.errors import ClientError, CommandRefused
from producers.handle import JobHandle
from producers.jobs import DEFAULT_JOB_CLASS
from producers.results import ask_owner
from producers.views import emit_json, print_result, print_status, short
from producers.waiting import Waiter, stderr_console, stopped_before_waiting
from schemas.control import ControlReply
from schemas.enums import CommandName, JobState
from schemas.jobs import JobResult
from schemas.sequence import SEQUENCE_KEYS, missing_sequence_keys

JSON_HELP = 'Print JSON lines (one object per job or reply; errors as {"error": ...}).'
COMMAND_TIMEOUT_S = 10.0
TIMEOUT_HELP = "Seconds to wait for the QPU owner's answer; the command expires after it."
WAIT_TIMEOUT_HELP = "With --wait: give up after this many seconds (default: no limit; exit 3)."


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """The ``--json`` flag, the same on every command."""
    return click.option("--json", "as_json", is_flag=True, help=JSON_HELP)(f)


def timeout_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """The ``--timeout`` of commands that ask the owner."""
    return click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=COMMAND_TIMEOUT_S,
        show_default=True,
        help=TIMEOUT_HELP,
    )(f)


@contextmanager
def _client(ctx: click.Context, keep_reply_queue: bool = False) -> Iterator[QPUClient]:
    """A client for one CLI call; its reply queue is deleted when the call ends, unless
    `keep_reply_queue` (jobs submitted without waiting answer there)."""
    client = QPUClient(settings=settings_of(ctx))
    try:
        yield client
    except Exception as exc:  # nothing was submitted, or nothing will answer
        client.close(delete_reply_queue=True, interrupted=_interrupted(exc))
        raise
    except BaseException as exc:  # Ctrl-C: submitted jobs may still answer there
        client.close(delete_reply_queue=not keep_reply_queue, interrupted=_interrupted(exc))
        raise
    client.close(delete_reply_queue=not keep_reply_queue)


def _interrupted(exc: BaseException) -> bool:
    """Whether Ctrl-C ended the call (also when it was turned into a `StoppedWaiting`)."""
    return isinstance(exc, KeyboardInterrupt) or isinstance(exc.__context__, KeyboardInterrupt)


def _print_reply(reply: ControlReply, as_json: bool) -> None:
    if not reply.ok:
        raise CommandRefused(f"refused: {reply.message}", reply.error)
    if as_json:
        emit_json(reply)
    else:
        click.echo(reply.message)


@click.command("status")
@click.argument("job_id", required=False, type=JOB_ID)
@json_option
@timeout_option
@click.pass_context
def status(ctx: click.Context, job_id: str | None, as_json: bool, timeout: float) -> None:
    """Show the QPU state, mode, running job, queue depth per class and why jobs are held;
    with JOB_ID, that job: its place in line and estimated start, why it is held, or its end."""
    if job_id is not None:
        _job_status(ctx, job_id, as_json, timeout)
        return
    with _client(ctx) as client:
        reply = client.control(CommandName.STATUS, timeout=timeout)
    if not reply.ok or reply.status is None:
        _print_reply(reply, as_json)
        return
    if as_json:
        emit_json(reply.status)
    else:
        print_status(reply.status, Console())


def _job_status(ctx: click.Context, job_id: str, as_json: bool, timeout: float) -> None:
    """One job: waiting (position, ETA or hold reason), running, or its final result."""
    with _client(ctx) as client:
        reply = ask_owner(client, CommandName.RESULT, job_id, timeout=timeout)
    full = reply.job_id or job_id  # the owner resolved a prefix among the jobs you may see
    result = reply.result
    if reply.queue:
        entry = reply.queue[0]
        if as_json:
            emit_json(entry)
        elif entry.position == 0:
            click.echo(f"{full} RUNNING ({entry.job_class}, {entry.shots} shots)")
        elif entry.held is not None:
            click.echo(f"{full} QUEUED, {entry.held}")
        else:
            eta = "start unknown" if entry.eta_s is None else f"starts in about {entry.eta_s:.0f} s"
            if entry.eta_unknown is not None:
                eta = f"the QPU is {entry.eta_unknown}"
            click.echo(f"{full} QUEUED, position {entry.position}, {eta}")
        return
    if result is None:
        raise CommandRefused(f"no job {full} is waiting, running or finished", None)
    if as_json:
        emit_json(result)
    else:
        why = f": {result.error.message}" if result.error else ""
        click.echo(f"{full} {result.state.value}{why}")


@click.command("cancel")
@click.argument("job_id", type=JOB_ID)
@json_option
@timeout_option
@click.pass_context
def cancel(ctx: click.Context, job_id: str, as_json: bool, timeout: float) -> None:
    """Cancel a job, queued or running: your own, or any job for operators (JOB_ID may be
    its first 8 characters).

    Exits 1 when the owner does not know the job or it already ended.
    """
    with _client(ctx) as client:
        _print_reply(client.control(CommandName.CANCEL, job_id=job_id, timeout=timeout), as_json)


def _read_sequence(path: Path) -> str:
    """The abstract-repr JSON in `path`; a file that is not JSON, or JSON without the keys of a
    sequence, is a usage error (exit 2) found before anything is imported or asked."""
    text = path.read_text(encoding="utf-8")
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(
            f"{path} is not JSON ({exc}); write one with `python examples/make_sequence.py` "
            "(Sequence.to_abstract_repr())",
            param_hint="SEQUENCE_FILES",
        ) from exc
    missing = missing_sequence_keys(parsed) if isinstance(parsed, dict) else list(SEQUENCE_KEYS)
    if missing:
        what = (
            f"an object without {', '.join(repr(k) for k in missing)}"
            if isinstance(parsed, dict)
            else f"a JSON {type(parsed).__name__}, not an object"
        )
        raise click.BadParameter(
            f"{path} is not a Pulser abstract-repr sequence ({what}); write one with "
            "`python examples/make_sequence.py` (Sequence.to_abstract_repr())",
            param_hint="SEQUENCE_FILES",
        )
    return text


@click.command("submit")
@click.argument(
    "sequence_files",
    nargs=-1,
    required=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
)
@click.option("--shots", type=click.IntRange(min=1), required=True, help="Runs per job (>= 1).")
@click.option(
    "--class",
    "job_class",
    type=JOB_CLASS,
    default=DEFAULT_JOB_CLASS,
    show_default=True,
    help="Job class (policy); production jobs may preempt development ones.",
)
@click.option(
    "--priority",
    type=click.IntRange(0, 9),
    default=0,
    show_default=True,
    help="0-9 within the class, higher is more urgent.",
)
@click.option(
    "--repeat", type=click.IntRange(1), default=1, show_default=True, help="Jobs per file."
)
@click.option(
    "--allow-device-switch",
    is_flag=True,
    help="Let the owner run a sequence built for another device on its own device.",
)
@click.option("--require-qpu", is_flag=True, help="Run on the QPU only, never on an emulator lane.")
@click.option("--wait", is_flag=True, help="Wait for the results and print them.")
@click.option(
    "--timeout", type=click.FloatRange(min=0, min_open=True), default=None, help=WAIT_TIMEOUT_HELP
)
@json_option
@click.pass_context
def submit(
    ctx: click.Context,
    sequence_files: tuple[Path, ...],
    shots: int,
    job_class: str,
    priority: int,
    repeat: int,
    allow_device_switch: bool,
    require_qpu: bool,
    wait: bool,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Submit Pulser sequences (abstract-repr JSON files); prints each job id once the broker
    has it.

    With --wait, shows on stderr a progress bar: what the jobs wait for (state, position, ETA,
    hold reasons, maintenance message), then the shots measured (in a terminal; quiet when piped
    or with --json), then prints each result; exits 1 if a job did not end DONE,
    3 on --timeout. Ctrl-C stops waiting, not the jobs.
    """
    texts = [_read_sequence(path) for path in sequence_files]
    with _client(ctx, keep_reply_queue=not wait) as client:
        jobs = [
            client.build_job(
                text,
                shots,
                job_class,
                priority,
                allow_device_switch=allow_device_switch,
                require_qpu=require_qpu,
            )
            for text in texts
            for _ in range(repeat)
        ]
        handles = client.submit_many(jobs)
        try:
            results = _report_then_wait(client, handles, wait, as_json, job_class, shots, timeout)
        except KeyboardInterrupt:  # between the publish and the waiter: the jobs are queued
            raise stopped_before_waiting([h.job_id for h in handles]) from None
        if results is None:
            return
    for found in results:
        if as_json:
            emit_json(found)
        else:
            print_result(found)
    failed = [r for r in results if r.state is not JobState.DONE]
    if failed:
        raise ClientError(
            f"{len(failed)} of {len(results)} jobs did not end DONE "
            f"(first: {short(failed[0].job_id)} {failed[0].state.value})"
        )


def _report_then_wait(
    client: QPUClient,
    handles: list[JobHandle],
    wait: bool,
    as_json: bool,
    job_class: str,
    shots: int,
    timeout: float | None,
) -> list[JobResult] | None:
    """Print each submitted job (its id as soon as the broker confirmed it), then wait for the
    results when asked to (None when not)."""
    for handle in handles:
        if wait:
            click.echo(f"submitted {handle.job_id} ({job_class}, {shots} shots)", err=True)
        elif as_json:
            emit_json(
                {
                    "job_id": handle.job_id,
                    "state": JobState.QUEUED.value,
                    "job_class": job_class,
                    "shots": shots,
                }
            )
        else:
            click.echo(handle.job_id)
    for note in budget_notes(client):  # what the jobs' account has left, when it has a budget
        click.echo(f"qsched: {note}", err=True)
    if not wait:
        if client.owner_running() is False:
            namespace = client.topology.namespace
            click.echo(
                f"qsched: no QPU owner is running in namespace {namespace!r}: the job(s) stay "
                f"queued until one starts (QSCHED_NAMESPACE={namespace} qsched owner)",
                err=True,
            )
        return None
    return Waiter(client, handles, stderr_console(), quiet=as_json).wait(timeout)
