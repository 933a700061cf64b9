"""The client's hand-built publish frames are byte for byte what py-amqp's basic_publish writes."""

from __future__ import annotations

from typing import Any

import amqp
import pytest
from amqp import spec
from amqp.method_framing import frame_writer
from amqp.serialization import dumps

from producers.frames import PublishFrames, field_table
from schemas.codec import CONTENT_TYPE


class _Connection:
    def __init__(self, frame_max: int) -> None:
        self.frame_max = frame_max
        self.bytes_sent = 0


class _Transport:
    def __init__(self) -> None:
        self.written = bytearray()

    def write(self, data: Any) -> None:
        self.written += bytes(data)


def _py_amqp_bytes(frame_max: int, body: bytes, expiration_ms: int | None, **props: Any) -> bytes:
    """What py-amqp's channel writes for the publish the client used to make with it."""
    transport = _Transport()
    write = frame_writer(_Connection(frame_max), transport)
    message = amqp.Message(body, **props)
    if expiration_ms is not None:
        message.properties["expiration"] = str(expiration_ms)
    args = dumps("Bssbb", (0, "ns.jobs", "production", True, False))
    write(1, 7, spec.Basic.Publish, args, message)
    return bytes(transport.written)


@pytest.mark.parametrize("body_bytes", [0, 10, 4000, 4088, 4089, 20_000])
@pytest.mark.parametrize(
    ("headers", "expiration_ms"),
    [
        ({}, None),
        ({"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01", "tracestate": "k=v"}, None),
        ({}, 5000),
        ({"count": 3, "flag": True}, None),
    ],
)
def test_given_a_publish_when_built_by_hand_then_the_bytes_are_py_amqps(
    body_bytes: int, headers: dict[str, Any], expiration_ms: int | None
) -> None:
    """Bodies smaller than, equal to and larger than a frame; with and without trace headers
    and expiration."""
    body = bytes(range(256)) * (body_bytes // 256) + b"x" * (body_bytes % 256)
    frames = PublishFrames(7, 4096, CONTENT_TYPE, "ns.reply.alice.abc", "alice")
    built = b"".join(
        frames.publish(
            body,
            "ns.jobs",
            "production",
            message_id="job-1",
            type_name="qsched.JobRequest/1",
            priority=3,
            timestamp=1_700_000_000,
            headers=headers,
            expiration_ms=expiration_ms,
        )
    )
    expected = _py_amqp_bytes(
        4096,
        body,
        expiration_ms,
        content_type=CONTENT_TYPE,
        type="qsched.JobRequest/1",
        message_id="job-1",
        user_id="alice",
        timestamp=1_700_000_000,
        priority=3,
        reply_to="ns.reply.alice.abc",
        correlation_id="job-1",
        delivery_mode=2,
        application_headers=headers,
    )
    assert built == expected


def test_given_string_headers_then_the_table_is_py_amqps() -> None:
    headers = {"traceparent": "00-abc-def-01", "é": "ü"}
    assert field_table(headers) == dumps("F", [headers])


def test_given_a_short_string_over_255_bytes_then_it_is_refused() -> None:
    frames = PublishFrames(1, 4096, CONTENT_TYPE, "r", "u")
    with pytest.raises(ValueError, match="255"):
        frames.publish(
            b"",
            "x" * 256,
            "k",
            message_id="m",
            type_name="t",
            priority=0,
            timestamp=0,
            headers={},
        )
