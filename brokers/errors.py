"""Errors raised at the broker edge, translated from pika/kombu/subprocess failures."""

from __future__ import annotations


class BrokerError(Exception):
    """Root of every error raised by `brokers`."""


class BrokerUnavailable(BrokerError):
    """No broker could be reached or started; the message says how to get one."""


class TopologyMismatch(BrokerError):
    """A queue or exchange exists with other arguments than the topology asks for."""
