"""Errors a submitter sees; each says what to do about it."""

from __future__ import annotations


class ClientError(Exception):
    """Root of every error raised by `producers`."""


class UnknownJobClass(ClientError):
    """The job's class has no queue: the publish came back unroutable."""


class QueueFull(ClientError):
    """The class queue is at its max length and refused the job (broker nack)."""


class NotDeclared(ClientError):
    """The exchanges do not exist yet on this broker (nothing declared the topology)."""


class NotAuthorised(ClientError):
    """The broker refused the publish for this user."""


class BrokerUnreachable(ClientError):
    """No broker answered after the retries."""


class ResultTimeout(ClientError):
    """No final result arrived within the timeout (the job may still run)."""


class InvalidJob(ClientError):
    """The job was refused locally, before publishing; `error` is the structured reason."""

    def __init__(self, error: object) -> None:
        super().__init__(getattr(error, "message", str(error)))
        self.error = error
