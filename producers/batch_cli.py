"""`qsched batch show|results|close|cancel|retry BATCH_ID`: a batch, found by its id from any
process (the owner keeps batches: `producers.batches`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click

from brokers.cliparams import JOB_CLASS
from producers.batches import BatchHandle
from producers.cli import _client, _read_sequence, json_option
from producers.views import emit_json, print_result
from schemas.control import ControlReply


@click.group("batch")
def batch() -> None:
    """A batch (one sequence, many jobs with their runs and variables), by its id."""


def _with_batch(ctx: click.Context, batch_id: str, act: Callable[[BatchHandle], None]) -> None:
    with _client(ctx) as client:
        act(client.batch(batch_id))


@batch.command("show")
@click.argument("batch_id")
@json_option
@click.pass_context
def show(ctx: click.Context, batch_id: str, as_json: bool) -> None:
    """Print a batch: open or closed, its jobs' states and counts by state."""

    def act(handle: BatchHandle) -> None:
        found = handle.status()
        if as_json:
            emit_json(found)
            return
        shape = "canceled" if found.canceled else "open" if found.open else "closed"
        counts = ", ".join(f"{n} {s}" for s, n in sorted(found.counts.items())) or "no jobs"
        click.echo(f"batch {found.batch_id} ({shape}, {found.job_class}, {found.user}): {counts}")
        variables = ", ".join(found.variables) or "none"
        click.echo(f"  sequence {found.digest[:12]}, variables: {variables}")
        for job_id, state in zip(found.job_ids, found.states, strict=True):
            click.echo(f"  {job_id}  {state}")

    _with_batch(ctx, batch_id, act)


@batch.command("results")
@click.argument("batch_id")
@json_option
@click.pass_context
def results(ctx: click.Context, batch_id: str, as_json: bool) -> None:
    """Print the results of a batch's jobs that ended."""

    def act(handle: BatchHandle) -> None:
        found = handle.results()
        if as_json:
            emit_json({"batch_id": batch_id, "results": [r.model_dump(mode="json") for r in found]})
            return
        for result in found:
            print_result(result)

    _with_batch(ctx, batch_id, act)


def _command(name: str, doc: str, method: Callable[[BatchHandle], ControlReply]) -> click.Command:
    @click.argument("batch_id")
    @click.pass_context
    def run(ctx: click.Context, batch_id: str) -> None:
        _with_batch(ctx, batch_id, lambda handle: click.echo(method(handle).message))

    run.__doc__ = doc
    return click.command(name)(run)


batch.add_command(
    _command(
        "close",
        "Declare a batch complete: no more jobs (queued ones still run).",
        BatchHandle.close,
    )
)
batch.add_command(
    _command(
        "cancel",
        "Cancel a batch: closed, its queued jobs canceled, its running job stopped.",
        BatchHandle.cancel,
    )
)
batch.add_command(
    _command("retry", "Run a batch's jobs that ended ERROR again.", BatchHandle.retry)
)


@batch.command("submit")
@click.argument("sequence_file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--runs", type=click.IntRange(min=1), required=True, help="Runs (shots) per job.")
@click.option(
    "--variables",
    "variables",
    multiple=True,
    help="One job's variables as a JSON object, e.g. '{\"amp\": 1.5}'; repeat for more jobs "
    "(none: one job without variables).",
)
@click.option(
    "--class",
    "job_class",
    type=JOB_CLASS,
    default="development",
    show_default=True,
    help="Job class.",
)
@click.option("--open", "open_", is_flag=True, help="Keep the batch open for more jobs.")
@json_option
@click.pass_context
def submit(
    ctx: click.Context,
    sequence_file: Path,
    runs: int,
    variables: tuple[str, ...],
    job_class: str,
    open_: bool,
    as_json: bool,
) -> None:
    """Submit a batch: one sequence (abstract-repr JSON, parametrized or not) and one job per
    --variables; prints the batch id once the broker has it."""
    text = _read_sequence(sequence_file)
    try:
        values = [json.loads(v) for v in variables] or [{}]
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--variables") from None
    if not all(isinstance(v, dict) for v in values):
        raise click.BadParameter("each must be a JSON object", param_hint="--variables")
    with _client(ctx) as client:
        handle = client.submit_batch(
            text, [{"runs": runs, "variables": v} for v in values], job_class, open=open_
        )
    if as_json:
        emit_json({"batch_id": handle.batch_id, "job_ids": handle.job_ids})
    else:
        click.echo(f"batch {handle.batch_id}: {len(handle.job_ids)} job(s)")
