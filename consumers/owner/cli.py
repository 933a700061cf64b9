"""`qsched owner`: run a QPU owner (active or standby)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import uuid
from pathlib import Path
from typing import Any

import click

from brokers.cli import settings_of
from brokers.tracing import configure_tracing
from consumers.backends import BACKENDS
from consumers.owner.backend_choice import make_backend
from consumers.owner.metrics import OwnerMetrics, serve_metrics
from consumers.owner.wiring import Owner
from consumers.plugins import load_plugins
from consumers.tools.policycheck.cli import checked_policy

QSCHED_LOGGERS = ("consumers", "brokers", "schemas")
log = logging.getLogger("consumers.owner")


def setup_logging(verbose: bool) -> None:
    """INFO from qsched (DEBUG with `verbose`); libraries only say something when it is an error.

    pika logs a WARNING for every refused lease declare (twice a second per standby) and every
    returned message; those are expected here, so pika is held to ERROR.
    """
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for name in QSCHED_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("pika").setLevel(logging.ERROR)


@click.command("owner")
@click.option(
    "--backend",
    help=f"QPU backend: {', '.join(BACKENDS)} or a qsched.backends plugin (default: emulator).",
)
@click.option(
    "--policy",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Policy TOML file.",
)
@click.option("--shot-rate", type=float, help="Pace the backend at this many shots per second.")
@click.option("-v", "--verbose", is_flag=True, help="Log qsched's debug lines (decisions) too.")
@click.pass_context
def owner(
    ctx: click.Context,
    backend: str | None,
    policy: Path | None,
    shot_rate: float | None,
    verbose: bool,
) -> None:
    """Run a QPU owner. Several may run; one holds the QPU lease, the others wait to take over.

    Stops on SIGTERM or SIGINT after handing back every delivery it holds. With
    `owner.metrics_port` set (QSCHED_OWNER__METRICS_PORT) it serves Prometheus metrics at
    /metrics, active or standby.
    """
    setup_logging(verbose)
    configure_tracing("qsched-owner")
    settings = settings_of(ctx)
    changes: dict[str, Any] = {}
    if backend:
        changes["backend"] = backend
    if shot_rate:
        changes["shot_rate_hz"] = shot_rate
    if changes:
        settings = settings.model_copy(update={"owner": settings.owner.model_copy(update=changes)})
    the_policy = checked_policy(policy or settings.policy_file)
    plugins = load_plugins(the_policy)
    backend_options = the_policy.plugins.options.get(settings.owner.backend, {})
    owner_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    runner = Owner(
        settings,
        the_policy,
        make_backend(settings, backend_options, the_policy.plugins.timeout_s),
        owner_id,
        policy_path=policy or settings.policy_file,
        plugins=plugins,
    )

    if settings.owner.metrics_port is not None:
        runner.metrics = OwnerMetrics(
            runner.active.is_set,
            the_policy,
            namespace=runner.topology.namespace,
            calibrated_at=runner.backend.calibrated_at,
            created_series=settings.owner.metrics_created_series,
        )
        serve_metrics(runner.metrics, settings.owner.metrics_bind, settings.owner.metrics_port)

    received: list[str] = []

    def _stop(signum: int, frame: Any) -> None:
        received.append(signal.Signals(signum).name)  # logged once the loop is out, not here
        runner.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        runner.run()
    finally:
        runner.sinks.close()
        runner.lanes.close()
        runner.backend.close()
        why = f"on {received[0]}" if received else "after an error"
        log.info("owner %s stopped %s; the QPU lease is free for a standby", owner_id, why)
