"""Errors raised at the broker edge, translated from pika/kombu/subprocess failures."""

from __future__ import annotations


class BrokerError(Exception):
    """Root of every error raised by `brokers`.

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


class BrokerUnavailable(BrokerError):
    """No broker could be reached or started; the message says how to get one."""

    hint = "start one with `qsched broker up`, or point QSCHED_AMQP_URL at one"


class BrokerRefused(BrokerError):
    """The broker answered but refused the connection (credentials, vhost); retrying cannot help."""


class SettingsError(BrokerError):
    """The settings (``QSCHED_*`` variables, the TOML file) are wrong; the message names the key."""

    hint = "see docs/configuration.md for every key and its variable"


class TracingError(BrokerError):
    """The ``OTEL_*`` variables ask for something qsched cannot set up."""

    hint = "set OTEL_TRACES_EXPORTER to otlp, console or none"


class TopologyMismatch(BrokerError):
    """A queue or exchange exists with other arguments than the topology asks for."""
