"""`qsched reservation create|update|delete|list|show`: windows of QPU time for some accounts or
users (like Slurm's ``scontrol create reservation``), kept by the owner as events.

Times are ISO 8601 (UTC when no zone is given), ``now``, or ``+2h`` (from now); a window whose
end is not after its start, an unreadable time or a missing ``--accounts``/``--users`` exits 2
with one line before anything is sent. The owner refuses, naming it, an unknown account, user or
class, a window in the past, or one overlapping another reservation; only operators change
reservations (others: NOT_AUTHORISED, logged).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click
from pydantic import ValidationError

from producers.cli import _client, _print_reply, json_option, timeout_option
from producers.views import emit_json
from schemas.enums import CommandName
from schemas.reservations import Reservation
from schemas.timespec import parse_moment
from schemas.wire import utc_now

FLAGS = ("exclusive", "maintenance")


def _moment(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_moment(value, utc_now()).replace(microsecond=0)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _names(value: str | None) -> tuple[str, ...]:
    return tuple(n.strip() for n in (value or "").split(",") if n.strip())


def window_options(f: Any) -> Any:
    """What a reservation is: its window, owners, classes and flags."""
    for option in reversed(
        [
            click.option("--start", callback=_moment, metavar="TIME", help="2026-12-08T09:00, +2h"),
            click.option("--end", callback=_moment, metavar="TIME", help="When it ends."),
            click.option("--accounts", help="Comma-separated accounts it is for."),
            click.option("--users", help="Comma-separated users it is for (or --accounts)."),
            click.option("--classes", help="Only these job classes run in it (default: all)."),
            click.option(
                "--flags",
                help="exclusive (others off the emulator lanes too), maintenance (maintenance "
                "mode for the window); comma-separated.",
            ),
        ]
    ):
        f = option(f)
    return f


def _reservation(name: str, **given: Any) -> Reservation:
    flags = _names(given["flags"])
    wrong = [f for f in flags if f not in FLAGS]
    if wrong:
        raise click.BadParameter(f"unknown flag(s) {', '.join(wrong)}: exclusive, maintenance")
    if given["start"] is None or given["end"] is None:
        raise click.UsageError("a reservation needs --start and --end")
    try:
        return Reservation(
            name=name,
            start=given["start"],
            end=given["end"],
            accounts=_names(given["accounts"]),
            users=_names(given["users"]),
            classes=_names(given["classes"]),
            flags=flags,  # type: ignore[arg-type]
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise click.BadParameter(str(first["msg"]).removeprefix("Value error, ")) from None


@click.group("reservation")
def reservation() -> None:
    """Reservations: windows of QPU time for some accounts or users."""


@reservation.command("create")
@click.argument("name")
@window_options
@json_option
@timeout_option
@click.pass_context
def create(ctx: click.Context, name: str, as_json: bool, timeout: float, **given: Any) -> None:
    """Create reservation NAME (operators): during its window only its accounts/users run on
    the QPU, and no job of others starts that would not end before it opens."""
    wanted = _reservation(name, **given)
    _send(ctx, CommandName.RESERVATION_CREATE, as_json, timeout, reservation=wanted)


@reservation.command("update")
@click.argument("name")
@window_options
@json_option
@timeout_option
@click.pass_context
def update(ctx: click.Context, name: str, as_json: bool, timeout: float, **given: Any) -> None:
    """Change reservation NAME (operators): the options given replace its own."""
    with _client(ctx) as client:
        found = client.control(CommandName.RESERVATION_LIST, name=name, timeout=timeout)
        if not found.ok or not found.reservations:
            _print_reply(found, as_json)
            return
        old = found.reservations[0]
        merged = {
            "start": given["start"] or old.start,
            "end": given["end"] or old.end,
            "accounts": given["accounts"]
            if given["accounts"] is not None
            else ",".join(old.accounts),
            "users": given["users"] if given["users"] is not None else ",".join(old.users),
            "classes": given["classes"] if given["classes"] is not None else ",".join(old.classes),
            "flags": given["flags"] if given["flags"] is not None else ",".join(old.flags),
        }
        if given["accounts"] is not None:
            merged["users"] = ""
        if given["users"] is not None:
            merged["accounts"] = ""
        wanted = _reservation(name, **merged)
        reply = client.control(CommandName.RESERVATION_UPDATE, reservation=wanted, timeout=timeout)
    _print_reply(reply, as_json)


@reservation.command("delete")
@click.argument("name")
@json_option
@timeout_option
@click.pass_context
def delete(ctx: click.Context, name: str, as_json: bool, timeout: float) -> None:
    """Delete reservation NAME (operators); its window is open to all again."""
    _send(ctx, CommandName.RESERVATION_DELETE, as_json, timeout, name=name)


@reservation.command("list")
@json_option
@timeout_option
@click.pass_context
def listing(ctx: click.Context, as_json: bool, timeout: float) -> None:
    """Reservations open now or to come, by start."""
    _show(ctx, None, as_json, timeout)


@reservation.command("show")
@click.argument("name")
@json_option
@timeout_option
@click.pass_context
def show(ctx: click.Context, name: str, as_json: bool, timeout: float) -> None:
    """Reservation NAME: its window, owners, classes, flags and who set it."""
    _show(ctx, name, as_json, timeout)


def _show(ctx: click.Context, name: str | None, as_json: bool, timeout: float) -> None:
    with _client(ctx) as client:
        reply = client.control(CommandName.RESERVATION_LIST, name=name, timeout=timeout)
    if as_json and reply.ok:
        for found in reply.reservations or []:
            emit_json(found)
        return
    _print_reply(reply, as_json)


def _send(
    ctx: click.Context, command: CommandName, as_json: bool, timeout: float, **fields: Any
) -> None:
    with _client(ctx) as client:
        _print_reply(client.control(command, timeout=timeout, **fields), as_json)
