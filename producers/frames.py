"""The frames of one ``basic.publish`` (AMQP 0-9-1), built by hand for the client's batches.

py-amqp's ``basic_publish`` is most of a submit's cost: per message it serializes the properties
generically, reads the socket for a ``connection.blocked`` (a syscall), and writes the message
with a ``sendall`` of its own. `PublishFrames` builds the same bytes (method frame, content header,
body frames split at ``frame_max``) with what a batch shares prepared once, so that the caller
can write many messages in one ``sendall`` on py-amqp's transport. Everything else stays
py-amqp's and kombu's: the connection, the channel in confirm mode, and the reading of acks,
nacks, returns and ``connection.blocked``. A unit test checks the bytes against py-amqp's.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

from amqp.serialization import dumps

FRAME_METHOD, FRAME_HEADER, FRAME_BODY = 1, 2, 3
FRAME_END = b"\xce"
BASIC_CLASS, BASIC_PUBLISH = 60, 40
# Property flags of the basic class (AMQP 0-9-1, 4.2.6.1), in property-list order.
CONTENT_TYPE = 1 << 15
HEADERS = 1 << 13
DELIVERY_MODE = 1 << 12
PRIORITY = 1 << 11
CORRELATION_ID = 1 << 10
REPLY_TO = 1 << 9
EXPIRATION = 1 << 8
MESSAGE_ID = 1 << 7
TIMESTAMP = 1 << 6
TYPE = 1 << 5
USER_ID = 1 << 4
PERSISTENT = 2

_frame_prefix = struct.Struct(">BHI").pack
_header_prefix = struct.Struct(">HHQH").pack
_long = struct.Struct(">I").pack
_u64 = struct.Struct(">Q").pack


def shortstr(text: str) -> bytes:
    """An AMQP short string: one length byte, then at most 255 bytes of UTF-8.

    Raises:
        ValueError: the text is longer than 255 bytes.
    """
    raw = text.encode()
    if len(raw) > 255:
        raise ValueError(f"AMQP short string of {len(raw)} bytes (at most 255): {text[:40]!r}")
    return bytes((len(raw),)) + raw


def field_table(headers: Mapping[str, Any]) -> bytes:
    """An AMQP field table (its 4-byte length first); string values written directly (the
    trace headers), anything else by py-amqp's serializer."""
    if not all(isinstance(v, str) for v in headers.values()):
        return dumps("F", [dict(headers)])
    parts = []
    for key, value in headers.items():
        raw = value.encode()
        parts.append(shortstr(key) + b"S" + _long(len(raw)) + raw)
    content = b"".join(parts)
    return _long(len(content)) + content


class PublishFrames:
    """Builds the frames of persistent, mandatory publishes on one channel.

    Every message carries ``content_type``, ``headers`` (possibly empty), ``delivery_mode`` 2,
    ``priority``, ``correlation_id`` = ``message_id``, ``reply_to``, ``expiration`` when given,
    ``timestamp``, ``type`` and ``user_id``: what `producers.confirms` has always sent.

    Args:
        channel_id: the channel the frames are for.
        frame_max: the connection's negotiated frame size (bodies are split to fit).
        content_type: the ``content_type`` of every message.
        reply_to: the ``reply_to`` of every message.
        user_id: the ``user_id`` of every message (the broker checks it).
    """

    def __init__(
        self, channel_id: int, frame_max: int, content_type: str, reply_to: str, user_id: str
    ) -> None:
        self.channel_id = channel_id
        self.body_chunk = frame_max - 8  # frame type, channel, size and frame end
        self.content_type = shortstr(content_type)
        self.reply_to = shortstr(reply_to)
        self.user_id = shortstr(user_id)
        self.methods: dict[tuple[str, str], bytes] = {}
        self.types: dict[str, bytes] = {}

    def _frame(self, kind: int, payload: bytes) -> bytes:
        return _frame_prefix(kind, self.channel_id, len(payload)) + payload + FRAME_END

    def _method(self, exchange: str, routing_key: str) -> bytes:
        key = (exchange, routing_key)
        frame = self.methods.get(key)
        if frame is None:
            # reserved-1, exchange, routing-key, then the bits: mandatory set, immediate not
            args = b"\x00\x00" + shortstr(exchange) + shortstr(routing_key) + b"\x01"
            frame = self._frame(FRAME_METHOD, struct.pack(">HH", BASIC_CLASS, BASIC_PUBLISH) + args)
            self.methods[key] = frame
        return frame

    def publish(
        self,
        body: bytes,
        exchange: str,
        routing_key: str,
        *,
        message_id: str,
        type_name: str,
        priority: int,
        timestamp: int,
        headers: Mapping[str, Any],
        expiration_ms: int | None = None,
    ) -> list[bytes]:
        """The frames of one publish, in order (method, content header, body frames).

        Raises:
            ValueError: a short-string property longer than 255 bytes.
        """
        type_bytes = self.types.get(type_name)
        if type_bytes is None:
            type_bytes = self.types[type_name] = shortstr(type_name)
        message_id_bytes = shortstr(message_id)
        flags = (
            CONTENT_TYPE
            | HEADERS
            | DELIVERY_MODE
            | PRIORITY
            | CORRELATION_ID
            | REPLY_TO
            | MESSAGE_ID
            | TIMESTAMP
            | TYPE
            | USER_ID
        )
        expiration = b""
        if expiration_ms is not None:
            flags |= EXPIRATION
            expiration = shortstr(str(expiration_ms))
        properties = b"".join(
            (
                self.content_type,
                field_table(headers) if headers else b"\x00\x00\x00\x00",
                bytes((PERSISTENT, priority)),
                message_id_bytes,
                self.reply_to,
                expiration,
                message_id_bytes,
                _u64(timestamp),
                type_bytes,
                self.user_id,
            )
        )
        header = _header_prefix(BASIC_CLASS, 0, len(body), flags) + properties
        frames = [self._method(exchange, routing_key), self._frame(FRAME_HEADER, header)]
        chunk = self.body_chunk
        for start in range(0, len(body), chunk):
            frames.append(self._frame(FRAME_BODY, body[start : start + chunk]))
        return frames
