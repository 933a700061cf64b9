"""The `qsched` command: root group, settings loading, and the `broker` commands.

Each package contributes its commands through the ``qsched.commands`` entry points (see
pyproject.toml), so the root does not import packages it may not depend on.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import click
from rich.console import Console
from rich.table import Table

from brokers.bootstrap import ensure_broker, save_state, stop_saved
from brokers.clireport import EXIT_CODES_HELP, EXIT_INTERRUPTED, report, report_exception
from brokers.connection import channel, redact
from brokers.namespace import NAMESPACE, drop_namespace
from brokers.settings import Settings, load_settings
from brokers.topology import build_topology, declare, describe
from brokers.users import ROLES, Rabbitmqctl, add_user
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
        """A built-in command, else one from the entry points (only that one is imported:
        `qsched ctl`, run by Slurm's epilog, must not pay for importing the owner)."""
        found = super().get_command(ctx, cmd_name)
        if found is not None:
            return found
        for ep in entry_points(group="qsched.commands", name=cmd_name):
            command = ep.load()
            if isinstance(command, click.Command):
                return command
        return self._plugins().get(cmd_name)

    def main(  # type: ignore[override]
        self, args: Sequence[str] | None = None, prog_name: str | None = None, **extra: Any
    ) -> Any:
        """Run the command line; every failure ends as one line (or JSON) and an exit code.

        See `brokers.clireport` for the codes; ``--debug`` prints the traceback as well.
        """
        argv = list(sys.argv[1:] if args is None else args)
        as_json, debug = "--json" in argv, "--debug" in argv
        try:
            code = super().main(argv, prog_name or "qsched", standalone_mode=False, **extra)
        except click.exceptions.Abort:
            report(
                {"type": "Interrupted", "message": "interrupted", "hint": ""},
                EXIT_INTERRUPTED,
                as_json,
            )
        except click.ClickException as exc:
            if not isinstance(exc, click.UsageError):
                exc = click.UsageError(exc.format_message())
            report_exception(exc, as_json=as_json, debug=debug)
        except Exception as exc:
            report_exception(exc, as_json=as_json, debug=debug)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=RootGroup, epilog=EXIT_CODES_HELP)
@click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="QSCHED_CONFIG",
    help="TOML settings file (QSCHED_* variables override it; see docs/configuration.md).",
)
@click.option("--debug", is_flag=True, help="On an error, print its traceback too.")
@click.pass_context
def main(ctx: click.Context, config: Path | None, debug: bool) -> None:
    """qsched: share one neutral-atom QPU among the jobs of an HPC centre.

    Settings come from QSCHED_* variables (nested keys with __) and an optional TOML file.
    """
    ctx.obj = _SettingsOnce(config)


class _SettingsOnce:
    """Loads the settings on first use, so `--help` works even with wrong settings."""

    def __init__(self, config: Path | None) -> None:
        self.config = config
        self.settings: Settings | None = None

    def get(self) -> Settings:
        """The settings (loaded now if they were not yet)."""
        if self.settings is None:
            self.settings = load_settings(self.config)
        return self.settings


def settings_of(ctx: click.Context) -> Settings:
    """The settings, loaded once per command line (raises `SettingsError` when wrong)."""
    obj = ctx.find_root().obj
    assert isinstance(obj, _SettingsOnce)
    return obj.get()


@click.group()
def broker() -> None:
    """Find, start, stop and set up the RabbitMQ broker."""


@broker.command("up")
@click.option("--no-start", is_flag=True, help="Only look for a reachable broker.")
@click.pass_context
def broker_up(ctx: click.Context, no_start: bool) -> None:
    """Make sure a broker is reachable; start a private node if none is.

    With QSCHED_AMQP_URL set, that broker or an error saying why it does not answer (never
    another broker in its place). Else 127.0.0.1:5672, then a private node from the
    rabbitmq-server binary (left running; stop it with `qsched broker down`), then Docker.
    Prints the URL.
    """
    handle = ensure_broker(settings_of(ctx), allow_start=not no_start)
    save_state(handle)
    click.echo(f"broker ({handle.kind}): {redact(handle.url)}")
    if handle.kind != "configured":
        # Nodes qsched finds or starts use the well-known guest account; any other is hidden.
        shown = handle.url if ":guest@" in handle.url else redact(handle.url)
        click.echo(f"export QSCHED_AMQP_URL='{shown}'")


@broker.command("down")
def broker_down() -> None:
    """Stop the private node that `qsched broker up` started, if any."""
    url = stop_saved()
    click.echo(f"stopped {redact(url)}" if url else "no private node was started by qsched")


@broker.command("declare")
@click.option("--policy", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON lines, one object per exchange or queue."
)
@click.pass_context
def broker_declare(ctx: click.Context, policy: Path | None, as_json: bool) -> None:
    """Declare every exchange and queue (idempotent) and print them with their arguments."""
    settings = settings_of(ctx)
    topology = build_topology(settings, load_policy(policy or settings.policy_file))
    with channel(settings.amqp_url, name="qsched-declare") as ch:
        declare(ch, topology)
    rows = describe(topology)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    table = Table(title=f"qsched topology (namespace {topology.namespace!r})")
    for column in ("kind", "name", "type", "arguments", "bindings"):
        table.add_column(column, overflow="fold")
    for row in rows:
        args = ", ".join(f"{k}={v}" for k, v in row["arguments"].items())
        table.add_row(row["kind"], row["name"], row["type"], args, ", ".join(row["bindings"]))
    Console().print(table)


@broker.command("drop-namespace")
@click.argument("namespace")
@click.option("--policy", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--force", is_flag=True, help="Drop it even while an owner holds its QPU.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def broker_drop_namespace(
    ctx: click.Context, namespace: str, policy: Path | None, force: bool, yes: bool
) -> None:
    """Delete a namespace: its exchanges, class queues (of the policy), control and dead-letter
    queues, and its event log (operators). Refused while an owner of it is active, unless
    --force. Clients' reply queues expire on their own."""
    if not NAMESPACE.fullmatch(namespace):
        raise click.BadParameter("letters, digits, _ and - only", param_hint="NAMESPACE")
    settings = settings_of(ctx).model_copy(update={"namespace": namespace})
    topology = build_topology(settings, load_policy(policy or settings.policy_file))
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("give --yes to drop a namespace without a terminal to ask in")
        click.confirm(f"delete namespace {namespace!r} and its event log?", abort=True)
    deleted = drop_namespace(settings.amqp_url, topology, force=force)
    click.echo(f"dropped namespace {namespace!r}: {len(deleted)} queues and exchanges")


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
