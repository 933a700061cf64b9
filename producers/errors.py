"""Errors a submitter sees; each says what went wrong, and its `hint` what to do about it.

Every error the client raises is a `QschedError` (`brokers.errors`): its own are `ClientError`s,
and a broker that refuses the login raises the broker edge's `BrokerRefused` (one class for the
CLI, the owner and the SDK).
"""

from __future__ import annotations

from brokers.errors import BrokerRefused as BrokerRefused  # the broker edge's, raised as it is
from brokers.errors import QschedError as QschedError  # the one base of qsched's errors


class ClientError(QschedError):
    """Root of the errors raised by `producers` itself."""


class UnknownJobClass(ClientError):
    """The job's class has no queue: the publish came back unroutable."""

    hint = "choose one of the classes listed (--class)"


class QueueFull(ClientError):
    """The class queue is at its max length and refused the job (broker nack)."""

    hint = "submit again later, or to another class"


class NotDeclared(ClientError):
    """The exchanges do not exist yet on this broker (nothing declared the topology)."""

    hint = "run `qsched broker declare` or start an owner (`qsched owner`)"


class NotAuthorised(ClientError):
    """The broker refused the publish for this user."""

    hint = "ask an operator to give your RabbitMQ user the submitter role"


class BrokerUnreachable(ClientError):
    """No broker answered after the retries."""

    hint = "start one with `qsched broker up`, or point QSCHED_AMQP_URL at one"


class BrokerBlocked(BrokerUnreachable):
    """The broker blocks publishing (a memory or disk alarm) and confirms did not come in time."""

    hint = "the site's RabbitMQ is out of memory or disk: tell its operators; retry later"


class ResultTimeout(ClientError):
    """No final result arrived within the timeout (the job may still run)."""

    exit_code = 3


class NoOwnerAnswered(ResultTimeout):
    """No QPU owner answered a command within the timeout (the command expires unapplied)."""

    hint = "start one with `qsched owner`, or check it with `qsched status`"


class CommandRefused(ClientError):
    """The owner refused a command; `error` is its structured reason (e.g. UNKNOWN_JOB)."""

    def __init__(self, message: str, error: object = None) -> None:
        super().__init__(message)
        self.error = error


class InvalidJob(ClientError):
    """The job was refused locally, before publishing; `error` is the structured reason."""

    def __init__(self, error: object) -> None:
        super().__init__(getattr(error, "message", str(error)))
        self.error = error
