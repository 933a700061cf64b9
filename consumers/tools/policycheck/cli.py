"""`qsched policy check FILE`: one line per problem, ``FILE:LINE: severity: message``; and
`checked_policy`, which reports a bad file the same way for the commands that run with one."""

from __future__ import annotations

import json
from pathlib import Path

import click

from brokers.clireport import EXIT_ERROR, EXIT_OK
from consumers.errors import PolicyFileInvalid
from consumers.tools.policycheck.checks import ERROR, WARNING, Problem, check_text
from schemas.errors import PolicyError
from schemas.policy import Policy, load_policy


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
            click.echo(problem_line(file, problem))
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


def problem_line(file: Path, problem: Problem) -> str:
    """``FILE:LINE: severity: message`` (``FILE: ...`` when no single line is to blame)."""
    where = f"{file}:{problem.line}" if problem.line is not None else str(file)
    return f"{where}: {problem.severity}: {problem.message}"


def checked_policy(path: Path | None) -> Policy:
    """The policy in `path` (the defaults for None), for a command that runs with it.

    Raises:
        PolicyFileInvalid: the file is not a policy; each of its errors was printed on stderr
            first, as `qsched policy check` prints them (the CLI exits 2).
    """
    try:
        return load_policy(path)
    except PolicyError as exc:
        assert path is not None  # the defaults are a policy
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            raise PolicyFileInvalid(str(exc)) from None
        errors = [p for p in check_text(text)[1] if p.severity == ERROR]
        if not errors:  # cannot happen while both read the file with one model; say it anyway
            errors = [Problem(ERROR, exc.reason, exc.line)]
        for problem in errors:
            click.echo(problem_line(path, problem), err=True)
        raise PolicyFileInvalid(f"{path} is not a valid policy ({len(errors)} error(s))") from None
