"""`qsched result JOB`: a job's result, found by the owner (never by scanning the event log).

The owner answers the job's submitter and operators (`producers.results`); with ``--wait`` it
also sends the result here when the job ends, and the waiter shows position, ETA, then shots
(`producers.waiting`). With no owner answering, operators' results are read from the log.
"""

from __future__ import annotations

import click

from brokers.cliparams import JOB_ID
from producers.cli import WAIT_TIMEOUT_HELP, _client, json_option
from producers.errors import ClientError, NoOwnerAnswered
from producers.jobinfo import FULL_ID_LENGTH
from producers.results import fetch_result_from_owner
from producers.views import emit_json, print_result, short
from producers.waiting import Waiter, stderr_console


@click.command("result")
@click.argument("job_id", type=JOB_ID)
@click.option(
    "--wait", is_flag=True, help="Wait until the job ends; the owner sends the result here."
)
@click.option(
    "--timeout", type=click.FloatRange(min=0, min_open=True), default=None, help=WAIT_TIMEOUT_HELP
)
@json_option
@click.pass_context
def result(
    ctx: click.Context, job_id: str, wait: bool, timeout: float | None, as_json: bool
) -> None:
    """Print a job's result (JOB_ID may be its first 8 characters): the owner finds it without
    reading the whole event log, for the job's submitter and operators.

    With --wait, shows the job's position, ETA, then shots measured (in a terminal; quiet when
    piped or with --json) until the owner sends the result. With no owner answering, operators'
    results are read from the event log.
    """
    with _client(ctx) as client:
        try:
            found, entry = fetch_result_from_owner(client, job_id, wait=wait)
            full = found.job_id if found is not None else entry.job_id if entry else job_id
        except NoOwnerAnswered:
            if len(job_id) < FULL_ID_LENGTH:
                raise NoOwnerAnswered(
                    f"no QPU owner answered to resolve {job_id!r}",
                    hint="start one with `qsched owner`; without an owner, operators give the "
                    "whole job id to read the event log",
                ) from None
            full = job_id  # the event log: operators only
            found, entry = client.fetch_result(full, since=0), None
        if found is None and wait:
            job_class, shots = (entry.job_class, entry.shots) if entry else ("?", 0)
            handle = client.follow(full, job_class, shots)
            waiter = Waiter(client, [handle], stderr_console(), quiet=as_json, watch=True)
            found = waiter.wait(timeout)[0]
    if found is None:
        raise ClientError(
            f"no result for {full} yet ({entry.state.value if entry else 'not started'})",
            hint=f"wait for it: qsched result {short(full)} --wait",
        )
    if as_json:
        emit_json(found)
    else:
        print_result(found)
