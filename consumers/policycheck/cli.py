"""`qsched policy check FILE`: one line per problem, ``FILE:LINE: severity: message``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from brokers.clireport import EXIT_ERROR, EXIT_OK
from consumers.policycheck.checks import ERROR, WARNING, check_text


@click.group("policy")
def policy() -> None:
    """Work with policy files."""


@policy.command("check")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--strict", is_flag=True, help="Warnings fail the check too.")
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON object per problem, then a summary."
)
def check(file: Path, strict: bool, as_json: bool) -> None:
    """Validate a policy file (and the plugins it names) without starting an owner.

    Prints one line per problem, FILE:LINE: error|warning: what. Errors make the file unusable or
    leave jobs waiting for ever; warnings are legal but probably not meant. Exit 0: usable (only
    warnings, unless --strict); 1: problems; 2: the file cannot be read.
    """
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {file}: {exc}", param_hint="FILE") from None
    found, problems = check_text(text)
    errors = sum(1 for p in problems if p.severity == ERROR)
    warnings = sum(1 for p in problems if p.severity == WARNING)
    failed = errors > 0 or (strict and warnings > 0)
    for problem in problems:
        if as_json:
            record = {"file": str(file), "line": problem.line, "severity": problem.severity}
            click.echo(json.dumps(record | {"message": problem.message}))
        else:
            where = f"{file}:{problem.line}" if problem.line is not None else str(file)
            click.echo(f"{where}: {problem.severity}: {problem.message}")
    classes = list(found.class_names) if found is not None else []
    if as_json:
        summary = {"file": str(file), "ok": not failed, "errors": errors, "warnings": warnings}
        click.echo(json.dumps(summary | {"classes": classes}))
    elif not failed:
        click.echo(
            f"{file}: ok ({len(classes)} classes: {', '.join(classes)}; {warnings} warning(s))",
            err=True,
        )
    else:
        click.echo(f"{file}: {errors} error(s), {warnings} warning(s)", err=True)
    ctx = click.get_current_context()
    ctx.exit(EXIT_ERROR if failed else EXIT_OK)
