"""The `qsched` command: root group, settings loading, and the `broker` commands.

Each package contributes its commands through the ``qsched.commands`` entry points (see
pyproject.toml), so the root does not import packages it may not depend on.
"""

from __future__ import annotations

import json
import shutil
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import click
from rich.console import Console
from rich.table import Table

from brokers.bootstrap import ensure_broker, save_state, stop_saved
from brokers.connection import channel, redact
from brokers.errors import BrokerError
from brokers.settings import Settings, load_settings
from brokers.topology import build_topology, declare, describe
from brokers.users import ROLES, Rabbitmqctl, add_user
from schemas.errors import SchemaError
from schemas.policy import load_policy


class RootGroup(click.Group):
    """Loads subcommands from entry points on first use; turns our errors into one-line exits."""

    def _plugins(self) -> dict[str, click.Command]:
        found: dict[str, click.Command] = {}
        for ep in entry_points(group="qsched.commands"):
            command = ep.load()
            found[command.name or ep.name] = command
        return found

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Built-in and plugged-in commands, sorted."""
        return sorted(set(super().list_commands(ctx)) | set(self._plugins()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """A built-in command, else one from the entry points."""
        found = super().get_command(ctx, cmd_name)
        if found is not None:
            return found
        # Load only the entry point asked for: `qsched ctl` (run by Slurm's epilog) must not pay
        # for importing the owner and its emulator.
        for ep in entry_points(group="qsched.commands", name=cmd_name):
            command = ep.load()
            return command if isinstance(command, click.Command) else None
        return None

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; qsched's own errors exit 1 with one line on stderr."""
        try:
            return super().invoke(ctx)
        except (BrokerError, SchemaError) as exc:
            click.echo(f"qsched: {exc}", err=True)
            sys.exit(1)


@click.group(cls=RootGroup)
@click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="QSCHED_CONFIG",
    help="TOML settings file (QSCHED_* variables override it).",
)
@click.pass_context
def main(ctx: click.Context, config: Path | None) -> None:
    """qsched: share one neutral-atom QPU among the jobs of an HPC centre.

    Settings come from QSCHED_* variables (nested keys with __) and an optional TOML file.
    """
    ctx.obj = load_settings(config)


def settings_of(ctx: click.Context) -> Settings:
    """The settings loaded once by the root command."""
    obj = ctx.find_root().obj
    assert isinstance(obj, Settings)
    return obj


@click.group()
def broker() -> None:
    """Find, start, stop and set up the RabbitMQ broker."""


@broker.command("up")
@click.option("--no-start", is_flag=True, help="Only look for a reachable broker.")
@click.pass_context
def broker_up(ctx: click.Context, no_start: bool) -> None:
    """Make sure a broker is reachable; start a private node if none is.

    Tries QSCHED_AMQP_URL, then 127.0.0.1:5672, then a private node from the rabbitmq-server
    binary (left running; stop it with `qsched broker down`), then Docker. Prints the URL.
    """
    handle = ensure_broker(settings_of(ctx), allow_start=not no_start)
    save_state(handle)
    click.echo(f"broker ({handle.kind}): {redact(handle.url)}")
    if handle.kind != "configured":
        click.echo(f"export QSCHED_AMQP_URL='{handle.url}'")


@broker.command("down")
def broker_down() -> None:
    """Stop the private node that `qsched broker up` started, if any."""
    url = stop_saved()
    click.echo(f"stopped {redact(url)}" if url else "no private node was started by qsched")


@broker.command("declare")
@click.option("--policy", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print the topology as JSON.")
@click.pass_context
def broker_declare(ctx: click.Context, policy: Path | None, as_json: bool) -> None:
    """Declare every exchange and queue (idempotent) and print them with their arguments."""
    settings = settings_of(ctx)
    topology = build_topology(settings, load_policy(policy or settings.policy_file))
    with channel(settings.amqp_url, name="qsched-declare") as ch:
        declare(ch, topology)
    rows = describe(topology)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"qsched topology (namespace {topology.namespace!r})")
    for column in ("kind", "name", "type", "arguments", "bindings"):
        table.add_column(column, overflow="fold")
    for row in rows:
        args = ", ".join(f"{k}={v}" for k, v in row["arguments"].items())
        table.add_row(row["kind"], row["name"], row["type"], args, ", ".join(row["bindings"]))
    Console().print(table)


@broker.group("users")
def broker_users() -> None:
    """Broker users with least-privilege permissions per role (via rabbitmqctl)."""


@broker_users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the user may do.")
@click.option("--vhost", default=None, help="Virtual host (default: the one in amqp_url).")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from stdin instead of generating one."
)
@click.option("--node", default=None, help="rabbitmqctl -n NODE (default: the local node).")
@click.option(
    "--rabbitmqctl",
    "ctl_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="rabbitmqctl to run (default: the one on PATH).",
)
@click.pass_context
def broker_users_add(
    ctx: click.Context,
    name: str,
    role: str,
    vhost: str | None,
    password_stdin: bool,
    node: str | None,
    ctl_path: Path | None,
) -> None:
    """Create user NAME (or reset its password) with the permissions of --role.

    Prints the password once (a random one unless --password-stdin); it is stored nowhere else.
    """
    settings = settings_of(ctx)
    found = ctl_path or (Path(p) if (p := shutil.which("rabbitmqctl")) else None)
    if found is None:
        raise click.ClickException("rabbitmqctl not found; pass --rabbitmqctl PATH")
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    if password_stdin and not password:
        raise click.ClickException("empty password on stdin")
    url_vhost = unquote(urlsplit(settings.amqp_url.split(";")[0]).path.lstrip("/")) or "/"
    secret = add_user(
        Rabbitmqctl(found, node=node),
        name,
        role,  # type: ignore[arg-type]
        settings.namespace,
        vhost=vhost or url_vhost,
        password=password,
    )
    click.echo(
        f"user {name} ({role}) on vhost {vhost or url_vhost}, namespace {settings.namespace}"
    )
    if not password_stdin:
        click.echo(f"password: {secret}")


@click.group()
def auth() -> None:
    """Broker authentication: the MUNGE service behind rabbitmq_auth_backend_http."""


@auth.command("serve")
@click.option("--policy", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--host", default=None, help="Listen address (default: auth_service.host).")
@click.option("--port", type=int, default=None, help="Listen port (default: auth_service.port).")
@click.pass_context
def auth_serve(ctx: click.Context, policy: Path | None, host: str | None, port: int | None) -> None:
    """Answer RabbitMQ's user, vhost, resource and topic questions for MUNGE-authenticated users.

    See infra/rabbitmq/auth-http.conf for the broker side (http backend + cache).
    """
    import logging

    from brokers.authservice import AuthService, make_server, munge_decoder

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = settings_of(ctx)
    service = AuthService(
        settings, load_policy(policy or settings.policy_file), munge_decoder(settings.munge_socket)
    )
    listen = host or settings.auth_service.host
    server = make_server(service, listen, settings.auth_service.port if port is None else port)
    click.echo(f"qsched auth service on http://{listen}:{server.server_port}/auth/", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
