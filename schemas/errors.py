"""Errors of the wire contract: one root, and a decode error that keeps the bytes it refused."""

from __future__ import annotations


class SchemaError(Exception):
    """Root of every error raised by `schemas`."""


class EncodeError(SchemaError):
    """A model holds a value msgpack cannot carry (e.g. an integer beyond 64 bits)."""


class MessageTooLarge(SchemaError):
    """An encoded message is bigger than the configured maximum."""

    def __init__(self, size_bytes: int, max_bytes: int) -> None:
        super().__init__(f"message of {size_bytes} bytes exceeds the limit of {max_bytes} bytes")
        self.size_bytes = size_bytes
        self.max_bytes = max_bytes


class DecodeError(SchemaError):
    """A message body could not be turned into a model.

    Attributes:
        reason: one line saying what is wrong.
        raw: the body as received, so it can be dead-lettered untouched.
        type_name: the AMQP ``type`` property that came with it, if any.
        field: the first offending field (dotted path) when the body decoded but did not validate.
    """

    def __init__(
        self,
        reason: str,
        raw: bytes,
        type_name: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.raw = raw
        self.type_name = type_name
        self.field = field


class PolicyError(SchemaError):
    """A policy file is unreadable or invalid; `line` is set when the TOML parser knows it."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        where = f" (line {line})" if line is not None else ""
        super().__init__(f"invalid policy{where}: {reason}")
        self.reason = reason
        self.line = line
