"""`qsched dead list|show|requeue|purge`: the dead-lettered messages of ``<ns>.dead``, with why.

Every message the owner refused (and every command that expired unanswered) is in the dead
queue with its reason, error code, original queue and sender in headers. `list` and `show` peek:
they take messages without acking and close the channel, so RabbitMQ puts them back in order.
`requeue` asks the owner to take one back and feed it to its intake as a new job (see
`consumers.owner.deadletters`: every check applies again); `purge` empties the queue and needs
``--yes``. Operators only: the broker lets only operators read the dead queue, the owner takes
`dead-requeue` from operators only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import click

from brokers.cli import settings_of
from brokers.connection import channel
from brokers.munge import connection_url
from brokers.settings import Settings
from brokers.topology import (
    build_topology,
    dead_letter_origin,
    dead_letter_reason,
    dead_letter_sender,
)
from producers.cli import _client, _print_reply, json_option, timeout_option
from producers.errors import ClientError
from producers.views import emit_json
from schemas.codec import decode_any
from schemas.enums import CommandName
from schemas.errors import DecodeError
from schemas.jobs import JobRequest
from schemas.policy import Policy

PEEK_LIMIT = 10_000


class UnknownDeadLetter(ClientError):
    """No dead letter has the message id given."""

    hint = "list them with `qsched dead list`"


@contextmanager
def _dead(ctx: click.Context) -> Iterator[tuple[Any, str, Settings]]:
    settings = settings_of(ctx)
    url = connection_url(settings.amqp_url, settings.auth, settings.munge_socket)
    with channel(url, name="qsched-dead") as ch:
        yield ch, build_topology(settings, Policy()).dead_queue, settings  # classes: no matter


def _record(props: Any, body: bytes, max_bytes: int) -> dict[str, Any]:
    """One dead letter as plain data (a job's sequence is left out)."""
    code, reason = dead_letter_reason(props)
    stamp = props.timestamp
    record: dict[str, Any] = {
        "message_id": props.message_id,
        "type": props.type,
        "code": code,
        "reason": reason,
        "origin": dead_letter_origin(props),
        "user": dead_letter_sender(props),
        "at": datetime.fromtimestamp(stamp).astimezone().isoformat() if stamp else None,
        "bytes": len(body),
    }
    try:
        message = decode_any(body, props.type, max_bytes)
    except DecodeError as exc:
        record["decodes"] = str(exc)
        return record
    if isinstance(message, JobRequest):
        record["job"] = message.model_dump(mode="json", exclude={"sequence"})
    else:
        record["message"] = message.model_dump(mode="json")
    return record


def peek(ch: Any, queue: str, max_bytes: int, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` dead letters, left in the queue (the caller closes the channel)."""
    found: list[dict[str, Any]] = []
    while len(found) < limit:
        method, props, body = ch.basic_get(queue, auto_ack=False)
        if method is None:
            break
        found.append(_record(props, body, max_bytes))
    return found


@click.group("dead")
def dead() -> None:
    """Dead-lettered messages and why they were refused (operators only)."""


@dead.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@json_option
@click.pass_context
def dead_list(ctx: click.Context, limit: int, as_json: bool) -> None:
    """The oldest dead letters: id, when, error code, sender, original queue, reason."""
    with _dead(ctx) as (ch, queue, settings):
        found = peek(ch, queue, settings.max_message_bytes, limit)
    for record in found:
        if as_json:
            emit_json(record)
        else:
            click.echo(
                f"{record['message_id']}  {record['at'] or '?'}  {record['code'] or '-'}  "
                f"{record['user'] or '?'}  {record['origin'] or '?'}  {record['reason'] or ''}"
            )
    if not found and not as_json:
        click.echo(f"no dead letters in {queue}")


@dead.command("show")
@click.argument("message_id")
@json_option
@click.pass_context
def dead_show(ctx: click.Context, message_id: str, as_json: bool) -> None:
    """One dead letter: its reason, headers and the message (a job's sequence left out)."""
    with _dead(ctx) as (ch, queue, settings):
        found = peek(ch, queue, settings.max_message_bytes, PEEK_LIMIT)
    match = [r for r in found if str(r["message_id"]).startswith(message_id)]
    if len(match) != 1:
        raise UnknownDeadLetter(
            f"{len(match) or 'no'} dead letters in {queue} have an id starting with {message_id!r}"
        )
    if as_json:
        emit_json(match[0])
    else:
        for key, value in match[0].items():
            click.echo(f"{key + ':':<11} {value}")


@dead.command("requeue")
@click.argument("message_id")
@json_option
@timeout_option
@click.pass_context
def dead_requeue(ctx: click.Context, message_id: str, as_json: bool, timeout: float) -> None:
    """Send a dead-lettered job back to its class queue's intake as a new job (the owner
    checks it again as its submitter's; prints the new job id)."""
    with _client(ctx) as client:
        reply = client.control(CommandName.DEAD_REQUEUE, message_id=message_id, timeout=timeout)
        _print_reply(reply, as_json)


@dead.command("purge")
@click.option("--yes", is_flag=True, help="Really delete every dead letter.")
@json_option
@click.pass_context
def dead_purge(ctx: click.Context, yes: bool, as_json: bool) -> None:
    """Delete every dead letter (needs --yes)."""
    with _dead(ctx) as (ch, queue, _):
        if not yes:
            depth = ch.queue_declare(queue, passive=True).method.message_count
            raise click.UsageError(f"{queue} holds {depth} dead letters; purge them with --yes")
        purged = ch.queue_purge(queue).method.message_count
    if as_json:
        emit_json({"queue": queue, "purged": purged})
    else:
        click.echo(f"purged {purged} dead letters from {queue}")
