"""A job's result and history, asked of the owner (which knows where they are in the log).

Submitters may not read the event log, and nobody should scan all of it for one job: the owner
keeps each job's offsets and answers `result` and `history` commands for the job's submitter
and for operators (`consumers.owner.joblog`). A job id may be given by its first characters; the owner
resolves them among the sender's own jobs. ``wait=True`` also asks the owner to send the job's
result (and its progress) to this client's reply queue when the job ends, so a waiter is pushed
the result instead of polling for it.
"""

from __future__ import annotations

import contextlib
import time

from brokers.stream import Offset
from producers.errors import CommandRefused, NoOwnerAnswered, ResultTimeout
from producers.logscan import scan_for_result
from producers.port import ClientPort
from schemas.control import ControlReply
from schemas.enums import CommandName, ErrorCode
from schemas.envelope import Event
from schemas.jobs import JobResult
from schemas.reports import QueueEntry

ASK_TIMEOUT_S = 10.0
ASK_OWNER_AFTER_S = 30.0  # waiting this long for a result, ask the owner for it (then again)


class UnknownToOwner(CommandRefused):
    """The owner knows no job by that id (or prefix) that the sender may see."""

    hint = "check the id; the owner remembers the last 100,000 jobs (operators: qsched history)"


def ask_owner(
    client: ClientPort,
    command: CommandName,
    job_id: str,
    *,
    wait: bool = False,
    timeout: float = ASK_TIMEOUT_S,
) -> ControlReply:
    """Send a `result` or `history` command about one job and return the owner's answer.

    Raises:
        UnknownToOwner: no such job among those the sender may see.
        CommandRefused: another refusal (another user's job: NOT_AUTHORISED).
        NoOwnerAnswered: no owner answered within `timeout`.
    """
    reply = client.control(command, job_id=job_id, wait=wait, timeout=timeout)
    if reply.ok:
        return reply
    if reply.error is not None and reply.error.code is ErrorCode.UNKNOWN_JOB:
        raise UnknownToOwner(f"{command.value} refused: {reply.message}", reply.error)
    raise CommandRefused(f"{command.value} refused: {reply.message}", reply.error)


def fetch_result_from_owner(
    client: ClientPort, job_id: str, *, wait: bool = False, timeout: float = ASK_TIMEOUT_S
) -> tuple[JobResult | None, QueueEntry | None]:
    """The job's final result, or where it is while it waits or runs (position, ETA, hold).

    With `wait`, the owner also sends the result to this client when the job ends (it lands in
    ``client.results``).
    """
    reply = ask_owner(client, CommandName.RESULT, job_id, wait=wait, timeout=timeout)
    if reply.result is not None:
        client.results.setdefault(reply.result.job_id, reply.result)
    entry = reply.queue[0] if reply.queue else None
    return reply.result, entry


def fetch_history_from_owner(
    client: ClientPort, job_id: str, *, timeout: float = ASK_TIMEOUT_S
) -> list[Event]:
    """Every event of the job in log order (progress events and the sequence left out)."""
    reply = ask_owner(client, CommandName.HISTORY, job_id, timeout=timeout)
    return list(reply.history or [])


def find_result(client: ClientPort, job_id: str, since: Offset = "first") -> JobResult | None:
    """`QPUClient.fetch_result`: what this client already received, else the owner's answer;
    with no owner answering, or with `since`, the event log is read (operators only)."""
    if job_id in client.results:
        return client.results[job_id]
    if since == "first":
        with contextlib.suppress(NoOwnerAnswered):
            with contextlib.suppress(UnknownToOwner):
                return fetch_result_from_owner(client, job_id)[0]
            return None
    return scan_for_result(
        client.session.credentialed_url(),
        client.topology.events_stream,
        job_id,
        since,
        client.settings.log_max_bytes,
        client.user,
    )


def wait_for_result(client: ClientPort, job_id: str, timeout: float | None) -> JobResult:
    """`QPUClient.wait_result`: poll the client's reply queue for the job's final result; every
    `ASK_OWNER_AFTER_S` also ask the owner, which sends it (a reply lost in a failover).

    Raises:
        ResultTimeout: nothing final arrived within `timeout` seconds.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    ask_at = time.monotonic() + ASK_OWNER_AFTER_S
    while job_id not in client.results:
        now = time.monotonic()
        left = None if deadline is None else deadline - now
        if left is not None and left <= 0:
            raise ResultTimeout(f"no result for job {job_id} within {timeout} s")
        if now >= ask_at:
            ask_at = now + ASK_OWNER_AFTER_S
            with contextlib.suppress(NoOwnerAnswered, CommandRefused):
                fetch_result_from_owner(client, job_id)
            continue
        client.poll(min(left, 1.0) if left is not None else 1.0)
    return client.results[job_id]
