"""msgpack codec for the wire models.

The AMQP ``type`` property names the schema and its version (``qsched.JobRequest/1``); the body is
the msgpack encoding of the model's JSON-mode dump. Anything that cannot become a model, whatever
the cause, raises `DecodeError` carrying the raw bytes, so the shell can dead-letter it untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import msgpack
from pydantic import ValidationError

from schemas.batches import BatchRequest
from schemas.errors import DecodeError, EncodeError, MessageTooLarge
from schemas.messages import ALL_MESSAGES
from schemas.records import EventRecord
from schemas.wire import Message

CONTENT_TYPE = "application/x-msgpack"
DEFAULT_MAX_BYTES = 4 * 1024 * 1024

M = TypeVar("M", bound=Message)

_WIRE: list[type[Message]] = [*ALL_MESSAGES, BatchRequest, EventRecord]
_BY_NAME: dict[str, type[Message]] = {cls.schema_name: cls for cls in _WIRE}


def encode(
    message: Message, max_bytes: int = DEFAULT_MAX_BYTES, update: Mapping[str, Any] | None = None
) -> bytes:
    """Encode a model to msgpack.

    Args:
        message: the model to encode.
        max_bytes: refuse bodies larger than this.
        update: JSON-mode values replacing fields of the dump (a stamp such as the client's
            ``submitted_at`` on a model it built), instead of copying the model first; they are
            not validated.

    Returns:
        The body; its AMQP ``type`` is ``message.type_name()``.

    Raises:
        MessageTooLarge: the body exceeds `max_bytes`.
        EncodeError: a value msgpack cannot represent.
    """
    try:
        data = message.model_dump(mode="json")
        if update:
            data.update(update)
        body: bytes = msgpack.packb(data, use_bin_type=True)
    except (OverflowError, TypeError, ValueError) as exc:
        raise EncodeError(f"cannot encode {message.schema_name}: {exc}") from None
    if len(body) > max_bytes:
        raise MessageTooLarge(len(body), max_bytes)
    return body


def parse_type(type_name: str | None, raw: bytes) -> tuple[type[Message], int]:
    """Split an AMQP ``type`` into the model class and the version it claims.

    Raises:
        DecodeError: missing, malformed, unknown schema or unsupported version.
    """
    if not type_name:
        raise DecodeError("message has no 'type' property naming its schema", raw, type_name)
    name, sep, version_text = type_name.rpartition("/")
    if not sep or not version_text.isdigit():
        raise DecodeError(
            f"malformed type {type_name!r}; expected <schema>/<version>", raw, type_name
        )
    cls = _BY_NAME.get(name)
    if cls is None:
        raise DecodeError(f"unknown schema {name!r}", raw, type_name)
    version = int(version_text)
    if version != cls.schema_version:
        raise DecodeError(
            f"unsupported version {version} of {name} (supported: {cls.schema_version})",
            raw,
            type_name,
        )
    return cls, version


def decode(
    body: bytes,
    type_name: str | None,
    expected: type[M],
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> M:
    """Decode a body into the model `expected`.

    Args:
        body: the raw AMQP body.
        type_name: the AMQP ``type`` property.
        expected: the model the caller can handle.
        max_bytes: refuse bodies larger than this.

    Returns:
        The validated model.

    Raises:
        DecodeError: for every reason the body cannot become `expected`.
    """
    message = decode_any(body, type_name, max_bytes)
    if not isinstance(message, expected):
        raise DecodeError(
            f"expected {expected.schema_name}, got {type(message).schema_name}", body, type_name
        )
    return message


def decode_any(body: bytes, type_name: str | None, max_bytes: int = DEFAULT_MAX_BYTES) -> Message:
    """Decode a body into whichever model its ``type`` names.

    Raises:
        DecodeError: for every reason the body cannot become a model.
    """
    raw = bytes(body)
    if len(raw) > max_bytes:
        raise DecodeError(f"message of {len(raw)} bytes exceeds {max_bytes} bytes", raw, type_name)
    cls, _ = parse_type(type_name, raw)
    try:
        data = msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises many unrelated types for bad input
        raise DecodeError(f"body is not valid msgpack: {exc}", raw, type_name) from None
    if not isinstance(data, dict):
        raise DecodeError(f"body is a {type(data).__name__}, not a map", raw, type_name)
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        reason = f"invalid {cls.schema_name}: {field or 'body'}: {first['msg']}"
        raise DecodeError(reason, raw, type_name, field) from None
