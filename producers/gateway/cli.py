"""`qsched gateway serve`: the QRMI-compatible HTTP gateway (see `producers.gateway`)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from brokers.cli import settings_of
from brokers.tracing import configure_tracing
from schemas.policy import load_policy

log = logging.getLogger("producers.gateway")


@click.group("gateway")
def gateway() -> None:
    """The HTTP gateway that lets QRMI's PasqalLocal resource (Slurm's QRMI plugin) use qsched."""


def _listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


@gateway.command("serve")
@click.option("--listen", default=None, help="HOST:PORT to listen on (default: gateway.listen).")
@click.option("--policy", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("-v", "--verbose", is_flag=True, help="Log every request, not only refusals.")
@click.pass_context
def serve(ctx: click.Context, listen: str | None, policy: Path | None, verbose: bool) -> None:
    """Serve Warden's API (the endpoints QRMI's PasqalLocal uses) on top of qsched.

    Every request but GET /accessible must carry a fresh MUNGE credential (X-Munge-Cred),
    decoded by the local munged (QSCHED_MUNGE_SOCKET, else the default socket). The gateway's
    broker user (QSCHED_AMQP_URL) must be listed in the policy's gateway_users. It keeps no
    state: run several behind a load balancer, restart any at any time.
    """
    import uvicorn

    from brokers.libmunge import LibMunge
    from producers.gateway.app import build_app
    from producers.gateway.link import OwnerLink
    from producers.gateway.service import Gateway

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    configure_tracing("qsched-gateway")
    settings = settings_of(ctx)
    the_policy = load_policy(policy or settings.policy_file)
    if settings.amqp_user not in the_policy.gateway_users:
        log.warning(
            "broker user %r is not in the policy's gateway_users: the owner will refuse to let "
            "it act for MUNGE-verified users",
            settings.amqp_user,
        )
    host, port = _listen(listen or settings.gateway.listen)
    link = OwnerLink(settings, the_policy)
    service = Gateway(link, settings.gateway.job_class, the_policy.epilog_users)
    decoder = LibMunge(settings.munge_socket)
    app = build_app(
        service, decoder.decode, settings.gateway.max_body_bytes, settings.gateway.threads
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        access_log=verbose,
        log_level="info",
        server_header=False,
    )
    server = uvicorn.Server(config)
    click.echo(f"qsched gateway on http://{host}:{port}", err=True)
    try:
        server.run()
    finally:
        link.close()
