"""`qsched ctl ...`: operators' commands to the QPU owner, and the Slurm prolog's and epilog's
(``allocation-started``, ``allocation-ended``). Each prints the owner's one-line answer, or JSON
with ``--json``; a command no owner answered within ``--timeout`` expires unapplied."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from brokers.cliparams import JOB_ID
from producers.cli import _client, _print_reply, json_option, timeout_option
from schemas.enums import CommandName, Mode


@click.group("ctl")
def ctl() -> None:
    """Operators' commands to the QPU owner (each expires after --timeout if no owner answers)."""


def _simple(name: CommandName, doc: str) -> click.Command:
    @click.command(name.value, help=doc)
    @json_option
    @timeout_option
    @click.pass_context
    def command(ctx: click.Context, as_json: bool, timeout: float) -> None:
        with _client(ctx) as client:
            _print_reply(client.control(name, timeout=timeout), as_json)

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
@json_option
@timeout_option
@click.pass_context
def ctl_calibration_start(ctx: click.Context, now: bool, as_json: bool, timeout: float) -> None:
    """Hold dispatching for calibration (state CALIBRATING); calibration jobs still run."""
    with _client(ctx) as client:
        reply = client.control(CommandName.CALIBRATION_START, force=now, timeout=timeout)
        _print_reply(reply, as_json)


def _read_specs(path: Path) -> str:
    """The device JSON in `path`, checked here so a bad file is named before anything is sent."""
    from schemas.sequence import load_device

    text = path.read_text(encoding="utf-8")
    try:
        json.loads(text)
        load_device(text)
    except ValueError as exc:
        reason = str(exc).removeprefix("not a valid Pulser device: ")
        raise click.BadParameter(
            f"{path} is not a Pulser device JSON: {reason}", param_hint="--specs"
        ) from exc
    return text


@ctl.command("calibration-complete")
@click.option(
    "--specs",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Pulser device JSON measured by the calibration.",
)
@json_option
@timeout_option
@click.pass_context
def ctl_calibration_complete(
    ctx: click.Context, specs: Path | None, as_json: bool, timeout: float
) -> None:
    """Bump the calibration epoch, install new specs, and dispatch again."""
    text = _read_specs(specs) if specs else None
    with _client(ctx) as client:
        reply = client.control(CommandName.CALIBRATION_COMPLETE, specs=text, timeout=timeout)
        _print_reply(reply, as_json)


@ctl.command("allocation-started")
@click.argument("slurm_job_id")
@click.option("--user", required=True, help="The unix user the allocation belongs to.")
@click.option("--account", help="Its Slurm account (omit where the site has no accounts).")
@click.option(
    "--end",
    "end_s",
    type=click.IntRange(min=0),
    help="When Slurm ends it, in epoch seconds (omit for no time limit).",
)
@click.option("--uid", type=click.IntRange(min=0), help="The user's uid.")
@click.option("--partition", help="Its Slurm partition.")
@json_option
@timeout_option
@click.pass_context
def ctl_allocation_started(
    ctx: click.Context,
    slurm_job_id: str,
    user: str,
    account: str | None,
    end_s: int | None,
    uid: int | None,
    partition: str | None,
    as_json: bool,
    timeout: float,
) -> None:
    """A Slurm allocation started (call from the prolog, as SlurmUser): register it, so the
    owner knows whose it is, its account and its end."""
    end = datetime.fromtimestamp(end_s, UTC) if end_s is not None else None
    with _client(ctx) as client:
        reply = client.control(
            CommandName.ALLOCATION_STARTED,
            allocation=slurm_job_id,
            user=user,
            account=account,
            end=end,
            uid=uid,
            partition=partition,
            timeout=timeout,
        )
        _print_reply(reply, as_json)


@ctl.command("allocation-ended")
@click.argument("slurm_job_id")
@json_option
@timeout_option
@click.pass_context
def ctl_allocation_ended(
    ctx: click.Context, slurm_job_id: str, as_json: bool, timeout: float
) -> None:
    """A Slurm allocation ended (call from the epilog): cancel its jobs, queued and running."""
    with _client(ctx) as client:
        reply = client.control(
            CommandName.ALLOCATION_ENDED, allocation=slurm_job_id, timeout=timeout
        )
        _print_reply(reply, as_json)


@ctl.command("preempt")
@click.argument("job_id", type=JOB_ID)
@json_option
@timeout_option
@click.pass_context
def ctl_preempt(ctx: click.Context, job_id: str, as_json: bool, timeout: float) -> None:
    """Stop the running job now and put it back in its queue, keeping the shots measured."""
    with _client(ctx) as client:
        _print_reply(client.control(CommandName.PREEMPT, job_id=job_id, timeout=timeout), as_json)


@ctl.command("mode")
@click.argument("mode", type=click.Choice([m.value for m in Mode]))
@click.option("--message", help="Shown by `qsched status` (e.g. why and until when).")
@json_option
@timeout_option
@click.pass_context
def ctl_mode(
    ctx: click.Context, mode: str, message: str | None, as_json: bool, timeout: float
) -> None:
    """Switch the site mode; maintenance holds user jobs (none are lost)."""
    with _client(ctx) as client:
        reply = client.control(CommandName.MODE, mode=Mode(mode), message=message, timeout=timeout)
        _print_reply(reply, as_json)
