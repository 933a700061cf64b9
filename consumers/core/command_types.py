"""The types every command handler shares: who may send it, the command as decoded, what the
handler did, and the refusal it raises. Apart from the table (`consumers.core.commands`) so that
handler modules (`consumers.core.jobctl`) and the table import them without a cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from consumers.core.outcomes import Effect
from consumers.core.state import OwnerState
from schemas.control import ControlCommand
from schemas.details import StandbyOwner
from schemas.enums import ErrorCode
from schemas.envelope import Event
from schemas.events import JobAccepted
from schemas.jobs import JobError
from schemas.policy import Policy


class Who(Enum):
    """Who may send a command."""

    OPERATOR = "operator"
    JOB_OWNER = "the job's submitter or an operator"
    BATCH_OWNER = "the batch's submitter or an operator"  # the handler checks (`batch_of`)
    ANYONE = "anyone"


class Refused(Exception):
    """A command that cannot be carried out now, with the error to answer."""

    def __init__(self, code: ErrorCode, message: str, error: JobError | None = None) -> None:
        super().__init__(message)
        self.error = error or JobError(code=code, message=message)


@dataclass(frozen=True)
class Command:
    """A decoded control command, its sender, and what the shell learned for it.

    Attributes:
        detail: the shell's word on I/O it did for the command (e.g. the policy file reloaded).
        problem: the shell found the command unusable (bad specs file, unreadable policy).
        operator: the shell found the sender in the policy's ``operator_group``.
        standbys: for `status`, the standby owners the shell heard from (`consumers.owner.standbys`).
        resubmit: for `requeue` of a job that ended ERROR, its request as the log has it, with
            the attempt its next run is (None: the shell found no record of it).
        policy: for `reload-policy`, the text of the policy file the shell loaded.
    """

    command: ControlCommand
    user: str | None
    reply_to: str | None = None
    detail: str | None = None
    problem: JobError | None = None
    operator: bool = False
    standbys: tuple[StandbyOwner, ...] = ()
    resubmit: JobAccepted | None = None
    policy: str | None = None


@dataclass
class Done:
    """What a handler did: reply text, extra event fields, caused events and effects."""

    message: str
    fields: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    reply: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[OwnerState, Policy, Command, datetime], Done]


def is_operator(policy: Policy, given: Command) -> bool:
    """The sender is an operator (the policy's `operators`, or its `operator_group`)."""
    return given.operator or (given.user is not None and given.user in policy.operators)
