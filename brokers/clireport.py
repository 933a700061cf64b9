"""How the `qsched` command reports a failure: one line, a hint, an exit code, or JSON.

Every package's errors carry a `hint` (what to do) and an `exit_code`; this module only reads
those attributes, so it needs no import of the packages above `brokers`. Anything else is a bug
in qsched: it too gets one line, and ``--debug`` shows the traceback.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any

import click

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """\b
Exit codes: 0 ok; 1 error (refused, failed, a job did not end DONE); 2 usage (bad option or
input file); 3 timed out or no QPU owner answered; 130 interrupted (Ctrl-C).
With --json every command prints JSON lines (one object per job or event) and errors as
{"error": {...}} on stdout. --debug shows the traceback of an error."""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def error_record(
    exc: BaseException, *, code: str | None = None, **extra: Any
) -> tuple[int, dict[str, Any]]:
    """The exit code and the JSON record of `exc` (``message``, ``hint``, ``type``, ...)."""
    if isinstance(exc, click.UsageError):
        ctx = exc.ctx
        where = (
            f"qsched {ctx.command_path.split(' ', 1)[1]}"
            if ctx and " " in ctx.command_path
            else "qsched"
        )
        record = {
            "type": "UsageError",
            "message": _one_line(exc.format_message()),
            "hint": f"see `{where} --help`",
        }
        return EXIT_USAGE, record | extra
    exit_code = getattr(exc, "exit_code", None)
    hint = getattr(exc, "hint", None)
    known = isinstance(exit_code, int) and isinstance(hint, str)
    message = _one_line(str(exc)) or type(exc).__name__
    if not known:
        message = f"internal error: {type(exc).__name__}: {message}"
        hint = "run again with `qsched --debug ...` and report the traceback"
        exit_code = EXIT_ERROR
    record = {"type": code or type(exc).__name__, "message": message, "hint": hint or ""}
    error: Any = getattr(exc, "error", None)
    if error is not None and hasattr(error, "model_dump"):
        record["error"] = error.model_dump(mode="json")
    details = getattr(exc, "details", None)
    if isinstance(details, dict):
        record |= details
    return int(exit_code), record | extra  # type: ignore[arg-type]


def report(record: dict[str, Any], exit_code: int, as_json: bool) -> None:
    """Print a failure (JSON on stdout, or one line on stderr) and exit with `exit_code`."""
    if as_json:
        click.echo(json.dumps({"error": record | {"exit_code": exit_code}}))
    else:
        message, hint = record["message"], record.get("hint")
        if hint:  # click ends its messages with a period: no ".;" before the hint
            message = f"{message.rstrip().removesuffix('.')}; {hint}"
        click.echo(f"qsched: {message}", err=True)
    sys.exit(exit_code)


def report_exception(exc: BaseException, *, as_json: bool, debug: bool) -> None:
    """Report `exc` as one line (or JSON) and exit; with `debug`, print the traceback first."""
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    exit_code, record = error_record(exc)
    report(record, exit_code, as_json)
