"""Errors a submitter sees; each says what went wrong, and its `hint` what to do about it."""

from __future__ import annotations


class ClientError(Exception):
    """Root of every error raised by `producers`.

    Attributes:
        hint: what the user can do about it (the CLI prints it after the message).
        exit_code: the CLI's exit status for it (1: error, 3: timeout or no owner).
    """

    hint = ""
    exit_code = 1

    def __init__(self, message: str = "", hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


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


class BrokerRefused(ClientError):
    """The broker answered but refused the connection (credentials, vhost); not retried."""


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
