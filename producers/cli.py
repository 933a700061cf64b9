"""User and operator commands: `qsched submit`, `result`, `status`, `cancel`, `ctl ...`.

Each prints a rich table or line in a terminal and JSON with ``--json``; failures print one line
on stderr and exit non-zero (1: refused or failed, 2: usage, 3: timed out).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from brokers.cli import settings_of
from brokers.tracing import configure_tracing
from producers.client import QPUClient
from producers.errors import ClientError, ResultTimeout
from schemas.enums import CommandName, Mode
from schemas.messages import ControlReply, JobResult, StatusReport

console = Console()


@contextmanager
def _client(ctx: click.Context) -> Iterator[QPUClient]:
    configure_tracing("qsched-client")
    try:
        with QPUClient(settings=settings_of(ctx)) as client:
            yield client
    except ResultTimeout as exc:
        click.echo(f"qsched: {exc}", err=True)
        sys.exit(3)
    except ClientError as exc:
        click.echo(f"qsched: {exc}", err=True)
        sys.exit(1)


def _print_reply(reply: ControlReply, as_json: bool) -> None:
    if as_json:
        click.echo(reply.model_dump_json(indent=2))
    elif reply.ok:
        click.echo(reply.message)
    if not reply.ok:
        click.echo(f"qsched: refused: {reply.message}", err=True)
        sys.exit(1)


def _print_status(status: StatusReport) -> None:
    table = Table(
        title=f"QPU {status.qpu_state.value} · mode {status.mode.value} · backend {status.backend}"
    )
    table.add_column("class")
    table.add_column("waiting", justify="right")
    for job_class, depth in status.queue_depth.items():
        table.add_row(job_class, str(depth))
    console.print(table)
    if status.mode_message:
        console.print(f"[bold]mode message:[/bold] {status.mode_message}")
    if status.running:
        r = status.running
        console.print(
            f"running: {r.job_id} ({r.job_class}, {r.shots} shots, since {r.started_at:%H:%M:%S}, user {r.user})"
        )
    console.print(
        f"epoch {status.epoch} · owner {status.owner_id} · last decision: {status.last_decision}"
    )


def _print_result(result: JobResult, as_json: bool) -> None:
    if as_json:
        click.echo(result.model_dump_json(indent=2))
        return
    line = f"{result.job_id} {result.state.value} ({result.job_class}, {sum(result.counts.values())}/{result.shots} shots)"
    click.echo(line)
    if result.error:
        click.echo(f"  {result.error.code.value}: {result.error.message}")
    for bits, count in sorted(result.counts.items(), key=lambda kv: -kv[1])[:8]:
        click.echo(f"  {bits} {count}")


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for the owner.")
@click.pass_context
def status(ctx: click.Context, as_json: bool, timeout: float) -> None:
    """Show the QPU state, mode, running job and queue depth per class."""
    with _client(ctx) as client:
        reply = client.control(CommandName.STATUS, timeout=timeout)
    if not reply.ok or reply.status is None:
        _print_reply(reply, as_json)
        return
    if as_json:
        click.echo(reply.status.model_dump_json(indent=2))
    else:
        _print_status(reply.status)


@click.command("cancel")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def cancel(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """Cancel a job, queued or running (your own; operators: any job)."""
    with _client(ctx) as client:
        _print_reply(client.control(CommandName.CANCEL, job_id=job_id), as_json)


@click.group("ctl")
def ctl() -> None:
    """Operators' commands to the QPU owner."""


def _simple(name: CommandName, doc: str) -> click.Command:
    @click.command(name.value, help=doc)
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_context
    def command(ctx: click.Context, as_json: bool) -> None:
        with _client(ctx) as client:
            _print_reply(client.control(name), as_json)

    return command


ctl.add_command(_simple(CommandName.PAUSE, "Start no new job; the running one finishes."))
ctl.add_command(_simple(CommandName.RESUME, "Start dispatching again after pause or drain."))
ctl.add_command(
    _simple(CommandName.DRAIN, "Finish the running job and start nothing (before a shutdown).")
)
ctl.add_command(
    _simple(
        CommandName.RELOAD_POLICY,
        "Re-read the owner's policy file; a bad file is refused with its line, the old policy stays.",
    )
)


@ctl.command("calibration-start")
@click.option("--now", is_flag=True, help="Preempt the running job instead of waiting for it.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def ctl_calibration_start(ctx: click.Context, now: bool, as_json: bool) -> None:
    """Hold dispatching for calibration (state CALIBRATING); calibration jobs still run."""
    with _client(ctx) as client:
        _print_reply(client.control(CommandName.CALIBRATION_START, force=now), as_json)


@ctl.command("calibration-complete")
@click.option(
    "--specs",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Pulser device JSON measured by the calibration.",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def ctl_calibration_complete(ctx: click.Context, specs: Path | None, as_json: bool) -> None:
    """Bump the calibration epoch, install new specs, and dispatch again."""
    text = specs.read_text(encoding="utf-8") if specs else None
    with _client(ctx) as client:
        _print_reply(client.control(CommandName.CALIBRATION_COMPLETE, specs=text), as_json)


@ctl.command("allocation-ended")
@click.argument("slurm_job_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def ctl_allocation_ended(ctx: click.Context, slurm_job_id: str, as_json: bool) -> None:
    """A Slurm allocation ended (call from the epilog): cancel its jobs, queued and running."""
    with _client(ctx) as client:
        _print_reply(client.control(CommandName.ALLOCATION_ENDED, allocation=slurm_job_id), as_json)


@ctl.command("preempt")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def ctl_preempt(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """Stop the running job now and put it back in its queue, keeping the shots measured."""
    with _client(ctx) as client:
        _print_reply(client.control(CommandName.PREEMPT, job_id=job_id), as_json)


@ctl.command("mode")
@click.argument("mode", type=click.Choice([m.value for m in Mode]))
@click.option("--message", help="Shown by `qsched status` (e.g. why and until when).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def ctl_mode(ctx: click.Context, mode: str, message: str | None, as_json: bool) -> None:
    """Switch the site mode; maintenance holds user jobs (none are lost)."""
    with _client(ctx) as client:
        _print_reply(client.control(CommandName.MODE, mode=Mode(mode), message=message), as_json)


@click.command("submit")
@click.argument(
    "sequence_files",
    nargs=-1,
    required=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
)
@click.option("--shots", type=int, required=True, help="Number of runs per job.")
@click.option("--class", "job_class", default="production", show_default=True)
@click.option("--priority", type=click.IntRange(0, 9), default=0, show_default=True)
@click.option(
    "--repeat", type=click.IntRange(1), default=1, show_default=True, help="Jobs per file."
)
@click.option("--wait", is_flag=True, help="Wait for the results and print them.")
@click.option("--timeout", type=float, default=None, help="With --wait: seconds to wait.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def submit(
    ctx: click.Context,
    sequence_files: tuple[Path, ...],
    shots: int,
    job_class: str,
    priority: int,
    repeat: int,
    wait: bool,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Submit Pulser sequences (abstract-repr JSON files); prints the job ids.

    With --wait, prints each result (a progress bar counts them in a terminal); exits 1 if any
    job did not end DONE.
    """
    with _client(ctx) as client:
        jobs = [
            client.build_job(path.read_text(encoding="utf-8"), shots, job_class, priority)
            for path in sequence_files
            for _ in range(repeat)
        ]
        handles = client.submit_many(jobs)
        if not wait:
            for handle in handles:
                click.echo(json.dumps({"job_id": handle.job_id}) if as_json else handle.job_id)
            return
        results = _wait_all(client, [h.job_id for h in handles], timeout)
    if as_json and len(results) > 1:
        click.echo(json.dumps([r.model_dump(mode="json") for r in results], indent=2))
    else:
        for found in results:
            _print_result(found, as_json)
    if any(r.state.value != "DONE" for r in results):
        sys.exit(1)


def _wait_all(client: QPUClient, job_ids: list[str], timeout: float | None) -> list[JobResult]:
    """Results of all `job_ids`, with a progress bar in a terminal when there are several."""
    deadline = None if timeout is None else time.monotonic() + timeout
    show = len(job_ids) > 1 and sys.stderr.isatty()
    with Progress(console=Console(stderr=True), transient=True, disable=not show) as bar:
        task = bar.add_task("waiting for results", total=len(job_ids))
        while (done := sum(1 for j in job_ids if j in client.results)) < len(job_ids):
            bar.update(task, completed=done)
            if deadline is not None and time.monotonic() > deadline:
                raise ResultTimeout(
                    f"{len(job_ids) - done} of {len(job_ids)} jobs have no result after {timeout} s"
                )
            client.poll(0.5)
    return [client.results[j] for j in job_ids]


@click.command("result")
@click.argument("job_id")
@click.option("--wait", is_flag=True, help="Wait until the job has a result.")
@click.option(
    "--timeout", type=float, default=300.0, show_default=True, help="With --wait: seconds."
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def result(ctx: click.Context, job_id: str, wait: bool, timeout: float, as_json: bool) -> None:
    """Print a job's result, looked up in the event log."""
    with _client(ctx) as client:
        found = client.fetch_result(job_id)
        deadline = time.monotonic() + timeout
        while wait and found is None and time.monotonic() < deadline:
            client.poll(0.5)
            found = client.fetch_result(job_id)
    if found is None:
        click.echo(f"qsched: no result for {job_id} in the event log (yet)", err=True)
        sys.exit(1)
    _print_result(found, as_json)
