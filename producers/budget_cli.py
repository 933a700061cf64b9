"""`qsched budget set|top-up|show`: QPU-time budgets per account (and user), as events.

Operators set a budget (``budget set ACCOUNT SECONDS --period month [--user U]``) or top one up
for its current period (``budget top-up ACCOUNT SECONDS``); anyone may ``show`` the budgets their
jobs spend (operators: all). SECONDS is a duration (``3600``, ``90m``, ``10h``, ``2d``); one
that is not, or not more than zero, exits 2 with one line. Unknown accounts or users are refused
by the owner, named; a non-operator's change is refused (NOT_AUTHORISED) and logged.
"""

from __future__ import annotations

from typing import Any

import click

from producers.cli import _client, _print_reply, json_option, timeout_option
from producers.views import emit_json
from schemas.enums import CommandName
from schemas.timespec import parse_duration_s


def _seconds(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        return parse_duration_s(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group("budget")
def budget() -> None:
    """QPU-time budgets per account (and user) per period: set, top up, show."""


NEGATIVE_ARGS = {"ignore_unknown_options": True}  # '-5' reaches SECONDS, refused there, named


@budget.command("set", context_settings=NEGATIVE_ARGS)
@click.argument("account")
@click.argument("seconds", callback=_seconds)
@click.option(
    "--period", type=click.Choice(["day", "week", "month"]), default="month", show_default=True
)
@click.option("--user", help="A budget for this user within the account (default: the account).")
@json_option
@timeout_option
@click.pass_context
def budget_set(
    ctx: click.Context,
    account: str,
    seconds: float,
    period: str,
    user: str | None,
    as_json: bool,
    timeout: float,
) -> None:
    """Give ACCOUNT (or --user within it) SECONDS of QPU time per period (operators); replaces
    any budget of the policy or set before for it."""
    _send(
        ctx,
        CommandName.BUDGET_SET,
        as_json,
        timeout,
        account=account,
        seconds=seconds,
        period=period,
        user=user,
    )


@budget.command("top-up", context_settings=NEGATIVE_ARGS)
@click.argument("account")
@click.argument("seconds", callback=_seconds)
@click.option("--user", help="Top up this user's budget within the account.")
@json_option
@timeout_option
@click.pass_context
def budget_top_up(
    ctx: click.Context,
    account: str,
    seconds: float,
    user: str | None,
    as_json: bool,
    timeout: float,
) -> None:
    """Add SECONDS to ACCOUNT's budget for its current period only (operators)."""
    _send(
        ctx,
        CommandName.BUDGET_TOP_UP,
        as_json,
        timeout,
        account=account,
        seconds=seconds,
        user=user,
    )


@budget.command("show")
@click.argument("account", required=False)
@click.option("--user", help="Only this user's budgets (operators).")
@json_option
@timeout_option
@click.pass_context
def budget_show(
    ctx: click.Context, account: str | None, user: str | None, as_json: bool, timeout: float
) -> None:
    """The budgets in force, what each has spent this period and what is left (a submitter:
    the budgets their jobs spend)."""
    with _client(ctx) as client:
        reply = client.control(CommandName.BUDGET_SHOW, account=account, user=user, timeout=timeout)
    if as_json and reply.ok:
        for status in reply.budgets or []:
            emit_json(status)
        return
    _print_reply(reply, as_json)


def _send(
    ctx: click.Context, name: CommandName, as_json: bool, timeout: float, **fields: Any
) -> None:
    with _client(ctx) as client:
        _print_reply(client.control(name, timeout=timeout, **fields), as_json)
