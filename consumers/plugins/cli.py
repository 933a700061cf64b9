"""`qsched plugins`: which plugins are installed, where from, and which the policy loads.

It builds the policy's plugins as the owner would at start (`load_plugins`), so a missing or
broken plugin fails here with the same message (exit 2). Reads the environment it runs in: run
it with the owner's Python environment and policy file to see what the owner loads.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from brokers.cli import settings_of
from consumers.backends import BACKENDS
from consumers.plugins.loading import Origin, installed, load_plugins
from schemas.policy import load_policy


def _rows(in_policy: set[tuple[str, str]], backend: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = [
        {
            "point": "backends",
            "name": name,
            "distribution": "qsched",
            "version": "built in",
            "module": "consumers.backends",
            "loaded": name == backend,
        }
        for name in BACKENDS
    ]
    for origin in installed():
        loaded = (origin.point, origin.name) in in_policy or (
            origin.point == "backends" and origin.name == backend
        )
        rows.append(_row(origin, loaded))
    return rows


def _row(origin: Origin, loaded: bool) -> dict[str, object]:
    return {
        "point": origin.point,
        "name": origin.name,
        "distribution": origin.distribution,
        "version": origin.version,
        "module": origin.value,
        "loaded": loaded,
    }


@click.command("plugins")
@click.option(
    "--policy",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Policy TOML file (default: QSCHED_POLICY_FILE, else the built-in policy).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per plugin (JSON lines).")
@click.pass_context
def plugins(ctx: click.Context, policy: Path | None, as_json: bool) -> None:
    """List installed plugins (admission, ordering, event sinks, backends) and where each comes
    from; mark those the policy and the owner's backend setting load. Fails (exit 2) when the
    policy names a plugin that is missing or cannot be built."""
    settings = settings_of(ctx)
    the_policy = load_policy(policy or settings.policy_file)
    loaded = load_plugins(the_policy)
    in_policy = {(p.origin.point, p.name) for p in loaded.loaded}
    rows = _rows(in_policy, settings.owner.backend)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    table = Table(box=None, pad_edge=False, show_edge=False)
    for column in ("control point", "name", "loaded", "distribution", "version", "entry point"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            str(row["point"]),
            str(row["name"]),
            "yes" if row["loaded"] else "",
            str(row["distribution"] or "?"),
            str(row["version"] or ""),
            str(row["module"]),
        )
    Console().print(table)
