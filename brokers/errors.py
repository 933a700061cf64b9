"""Errors raised at the broker edge, translated from pika/kombu/subprocess failures.

`QschedError` is the one base of the errors qsched raises to the code that calls it: the broker
edge's (`BrokerError`, here) and the client SDK's (`producers.errors.ClientError`). pika's
exceptions are translated into `ConnectionLost` and `ChannelClosed` at `brokers.connection`
(`translated`), so the owner and the tools catch these, never pika's.
"""

from __future__ import annotations


class QschedError(Exception):
    """Root of every error qsched raises to its caller (client SDK, CLI, broker edge).

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


class BrokerError(QschedError):
    """Root of every error raised by `brokers`."""


class BrokerUnavailable(BrokerError):
    """No broker could be reached or started; the message says how to get one."""

    hint = "start one with `qsched broker up`, or point QSCHED_AMQP_URL at one"


class BrokerRefused(BrokerError):
    """The broker answered but refused the connection (credentials, vhost); retrying cannot help."""


class ConnectionLost(BrokerError):
    """The connection to the broker broke (closed, reset, heartbeats missed)."""


class ChannelClosed(BrokerError):
    """The broker closed a channel; `code` is its AMQP reply code when it gave one (403: access
    refused, 404: not found, 405: resource locked), `reason` its reply text (else the message)."""

    def __init__(self, message: str = "", code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason or message


class SettingsError(BrokerError):
    """The settings (``QSCHED_*`` variables, the TOML file) are wrong; the message names the key."""

    hint = "see docs/configuration.md for every key and its variable"


class TracingError(BrokerError):
    """The ``OTEL_*`` variables ask for something qsched cannot set up."""

    hint = "set OTEL_TRACES_EXPORTER to otlp, console or none"


class TopologyMismatch(BrokerError):
    """A queue or exchange exists with other arguments than the topology asks for."""
