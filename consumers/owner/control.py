"""Control deliveries into `Command` inputs; the I/O a command needs is done here, not in the core.

What a command means is `consumers.core.commands` (a table of pure handlers and who may send
each). This module decodes the message, checks the sender's reply queue, and does the I/O some
commands need before the core sees them: `reload-policy` reads the policy file (a bad file is
refused with its line and the running policy stays; a changed set of classes asks for a restart,
because each class is a queue the owner consumes), `calibration-complete --specs` parses the
new Pulser device. A command issued longer ago than `max_age_s` is refused (STALE_COMMAND):
clients let unanswered commands expire in the broker, and this catches any that did not, so an
owner that starts late never applies yesterday's ``pause``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from consumers.core.commands import Command
from consumers.owner.authz import is_operator
from consumers.owner.deliveries import acting_user, check_envelope, decode_error
from schemas.codec import decode
from schemas.control import ControlCommand
from schemas.enums import CommandName, ErrorCode
from schemas.errors import DecodeError, PolicyError
from schemas.jobs import JobError
from schemas.policy import Policy, load_policy
from schemas.sequence import load_device


@dataclass(frozen=True)
class Prepared:
    """A command ready for the core, and what the shell installs if the owner accepts it."""

    command: Command
    policy: Policy | None = None
    device: Any = None


def read_command(
    props: Any,
    body: bytes,
    namespace: str,
    max_bytes: int,
    policy: Policy,
    policy_path: Path | None,
    now: datetime | None = None,
    max_age_s: float | None = None,
) -> Prepared | JobError:
    """The command of a control delivery, or why it cannot be read at all.

    With `now` and `max_age_s`, a command issued more than `max_age_s` before `now` comes back
    as a refused command (STALE_COMMAND).
    """
    reply_to, problem = check_envelope(props, namespace)
    if problem is not None:
        return problem
    user, problem = acting_user(props, policy.gateway_users)
    if problem is not None:
        return problem
    try:
        command = decode(body, props.type, ControlCommand, max_bytes)
    except DecodeError as exc:
        return decode_error(exc)
    if now is not None and max_age_s is not None:
        age_s = (now - command.issued_at).total_seconds()
        if age_s > max_age_s:
            stale = JobError(
                code=ErrorCode.STALE_COMMAND,
                message=f"command {command.command.value} was issued {age_s:.0f} s ago; "
                "not applied (send it again)",
                details={"issued_at": command.issued_at.isoformat()},
            )
            return Prepared(Command(command, user, reply_to, problem=stale))
    # The group database is I/O: resolved here, so the core only reads a flag.
    operator = is_operator(policy, user)
    if command.command is CommandName.RELOAD_POLICY:
        new, problem = _reload(policy, policy_path)
        detail = f"policy reloaded from {policy_path}" if new is not None else None
        text = policy_text(policy_path) if new is not None else None
        return Prepared(
            Command(command, user, reply_to, detail, problem, operator=operator, policy=text),
            policy=new,
        )
    if command.command is CommandName.CALIBRATION_COMPLETE and command.specs:
        try:
            device = load_device(command.specs)
        except ValueError as exc:
            problem = JobError(
                code=ErrorCode.INVALID_SCHEMA,
                message=str(exc) or "not a valid Pulser device",
                field="specs",
            )
            return Prepared(Command(command, user, reply_to, problem=problem, operator=operator))
        detail = f"new specs for {device.name}"
        return Prepared(Command(command, user, reply_to, detail, operator=operator), device=device)
    return Prepared(Command(command, user, reply_to, operator=operator))


def policy_text(path: Path | None) -> str | None:
    """The policy file's text as the log keeps it (None: the defaults, no file)."""
    return Path(path).read_text(encoding="utf-8") if path is not None else None


def _reload(policy: Policy, path: Path | None) -> tuple[Policy | None, JobError | None]:
    if path is None:
        return None, JobError(
            code=ErrorCode.INTERNAL,
            message="this owner runs on the default policy (no --policy file to reload)",
        )
    try:
        new = load_policy(path)
    except PolicyError as exc:
        return None, JobError(code=ErrorCode.INTERNAL, message=str(exc), details={"line": exc.line})
    if set(new.classes) != set(policy.classes):
        return None, JobError(
            code=ErrorCode.INTERNAL,
            message=(
                f"the policy changes the set of classes ({sorted(policy.classes)} -> "
                f"{sorted(new.classes)}); restart the owner to add or remove a class"
            ),
        )
    return new, None
