"""The broker port: connections, message properties, and pika's errors translated.

Connection parameters and message properties are the AMQP envelope of every qsched message.
pika's exceptions stop here: `translated` turns them (and socket errors) into
`brokers.errors.ConnectionLost` / `ChannelClosed`, and the owner's modules name pika's types
through the aliases below (`Connection`, `Channel`, `Properties`), so only the broker edge and
the owner's publisher (`consumers.owner.publish`, which drives pika's channel below its blocking
wrapper) import pika.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.adapters.select_connection import SelectConnection

from brokers.errors import (
    BrokerError,
    BrokerRefused,
    BrokerUnavailable,
    ChannelClosed,
    ConnectionLost,
)
from schemas.codec import CONTENT_TYPE
from schemas.wire import Message

Connection = BlockingConnection  # the blocking connection every qsched process uses
Channel = BlockingChannel
Properties = pika.BasicProperties
ACCESS_REFUSED = 403
NOT_FOUND = 404
RESOURCE_LOCKED = 405
# What a call on a connection or channel may raise, untranslated (a loop that must let the
# broker's failures through, and only those, catches these).
BROKER_FAILURES: tuple[type[BaseException], ...] = (pika.exceptions.AMQPError, OSError, BrokerError)


def translate(exc: BaseException, what: str) -> BrokerError:
    """pika's (or the socket's) `exc`, raised while doing `what`, as a `BrokerError`."""
    if isinstance(exc, BrokerError):
        return exc
    if isinstance(exc, pika.exceptions.ChannelClosedByBroker):
        return ChannelClosed(
            f"{what}: {exc.reply_text}", code=exc.reply_code, reason=exc.reply_text
        )
    if isinstance(exc, pika.exceptions.AMQPChannelError):
        return ChannelClosed(f"{what}: {exc!r}")
    return ConnectionLost(f"{what}: {exc!r}")


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """Raise pika's and the socket's failures inside as `BrokerError` (see `translate`).

    Raises:
        ChannelClosed: the broker closed the channel (its reply code kept).
        ConnectionLost: the connection broke, or another AMQP failure.
    """
    try:
        yield
    except (pika.exceptions.AMQPError, OSError) as exc:
        raise translate(exc, what) from exc


def close_quietly(connection: BlockingConnection) -> None:
    """Close `connection` if it is open; a failure to close is no failure."""
    if connection.is_open:
        with contextlib.suppress(pika.exceptions.AMQPError, OSError):
            connection.close()


def parameters(
    url: str,
    *,
    heartbeat_s: int | None = None,
    name: str = "qsched",
    connect_timeout_s: float = 5.0,
) -> pika.URLParameters:
    """pika connection parameters for `url`, with a client name shown in the management UI."""
    params = pika.URLParameters(url)
    if heartbeat_s is not None:
        params.heartbeat = heartbeat_s
    params.socket_timeout = connect_timeout_s
    params.blocked_connection_timeout = 60
    params.connection_attempts = 1
    params.client_properties = {"connection_name": name, "product": "qsched"}
    return params


COALESCE_BYTES = 64 * 1024


class CoalescingSelectConnection(SelectConnection):
    """pika's select connection, sending what was written between two polls in one chunk.

    pika queues each frame as its own buffer (a publish is three: method, header, body) and its
    transport sends each buffer with its own ``send`` when the socket is next writable: for the
    owner that was ~16 system calls per job, each waking the broker, a third of its CPU per job.
    Here a frame is appended to the last queued buffer while that stays under `COALESCE_BYTES`,
    so a poll sends everything written since the last one at once. Only the transport's buffer
    list is touched; where pika's internals differ, frames go out one by one as before.
    """

    def _adapter_emit_data(self, data: bytes) -> None:
        transport = getattr(self, "_transport", None)
        buffers = getattr(transport, "_tx_buffers", None)
        if buffers and len(buffers[-1]) + len(data) <= COALESCE_BYTES:
            buffers[-1] += data
            transport._tx_buffered_byte_count += len(data)  # type: ignore[union-attr]
            return
        super()._adapter_emit_data(data)


def connect(
    url: str, *, heartbeat_s: int | None = None, name: str = "qsched", coalesce: bool = False
) -> BlockingConnection:
    """Open a blocking connection; `url` may list the nodes of a cluster, ``;``-separated.

    The nodes are tried in turn, so after losing a node a caller that connects again lands on
    a survivor (pika has no failover of its own). With `coalesce`, writes between two polls go
    out as one chunk (`CoalescingSelectConnection`; for the owner's many small publishes).

    Raises:
        BrokerUnavailable: nothing answered at any URL, or a broker refused the credentials.
    """
    urls = [u.strip() for u in url.split(";") if u.strip()] or [url]
    failure: BrokerError | None = None
    for one in urls:
        try:
            impl = CoalescingSelectConnection if coalesce else None
            return BlockingConnection(
                parameters(one, heartbeat_s=heartbeat_s, name=name), _impl_class=impl
            )
        except (pika.exceptions.AMQPError, OSError) as exc:
            failure = connect_failure(one, exc)
            if not isinstance(failure, BrokerUnavailable) or len(urls) == 1:
                raise failure from exc
    assert failure is not None
    raise failure


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        if isinstance(current, pika.exceptions.AMQPConnectionError) and current.args:
            inner = current.args[0]
            if isinstance(inner, BaseException):
                yield inner
        current = current.__cause__ or current.__context__


def classify_connect_error(exc: BaseException) -> str:
    """Why a connection failed: ``auth`` (user/password), ``vhost`` or ``unreachable``.

    Works on pika's and py-amqp's (kombu's) exceptions alike.
    """
    for error in _chain(exc):
        name, text = type(error).__name__, str(error)
        if name in ("ProbableAuthenticationError", "AccessRefused", "AuthenticationError"):
            return "auth"
        if "ACCESS_REFUSED" in text or "authentication" in text.lower():
            return "auth"
        if name in ("ProbableAccessDeniedError", "NotAllowed") or "NOT_ALLOWED" in text:
            return "vhost"
    return "unreachable"


def connect_failure(url: str, exc: BaseException) -> BrokerError:
    """A one-line error for a failed connection to `url`, with what to do (password hidden).

    Returns:
        `BrokerRefused` for credentials or vhost (retrying cannot help), else `BrokerUnavailable`.
    """
    parts = urlsplit(url)
    host = f"{parts.hostname or '?'}:{parts.port or 5672}"
    user = unquote(parts.username or "guest")
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    kind = classify_connect_error(exc)
    if kind == "auth":
        return BrokerRefused(
            f"the broker at {host} refused user {user!r}: wrong user name or password",
            hint="fix the user and password in QSCHED_AMQP_URL",
        )
    if kind == "vhost":
        return BrokerRefused(
            f"the broker at {host} has no virtual host {vhost!r} (or {user!r} may not use it)",
            hint="fix the vhost in QSCHED_AMQP_URL (%2F is /) or create it: rabbitmqctl add_vhost",
        )
    return BrokerUnavailable(f"no broker answers at {host} ({socket_reason(exc)})")


def socket_reason(exc: BaseException) -> str:
    """The socket's word for a failed connection ("Connection refused", "timed out"), found
    inside pika's wrappers (whose own text is often empty), else the error's first line."""
    pending: list[object] = [exc]
    seen: set[int] = set()
    while pending:
        error = pending.pop(0)
        if not isinstance(error, BaseException) or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, OSError):
            return error.strerror or str(error) or type(error).__name__
        inner = getattr(error, "exception", None)  # pika's connector errors keep it there
        pending += [*error.args, inner, error.__cause__, error.__context__]
    text = str(exc)
    return text.splitlines()[0][:120] if text else type(exc).__name__


def redact(url: str) -> str:
    """The URL with its password hidden, for logs and errors."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def probe(url: str, timeout_s: float = 3.0) -> BaseException | None:
    """Why an AMQP connection to `url` does not open within `timeout_s` (None: it opened, and
    was closed again); `connect_failure` turns the reason into a one-line error."""
    try:
        conn = BlockingConnection(parameters(url, connect_timeout_s=timeout_s, name="qsched-probe"))
    except (pika.exceptions.AMQPError, OSError) as exc:
        return exc
    conn.close()
    return None


def is_reachable(url: str, timeout_s: float = 3.0) -> bool:
    """True when an AMQP connection to `url` opens (and is closed again) within `timeout_s`."""
    return probe(url, timeout_s) is None


def wait_reachable(url: str, timeout_s: float) -> bool:
    """Poll `is_reachable` until it answers or `timeout_s` passes (used while a node boots)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if is_reachable(url, timeout_s=2.0):
            return True
        time.sleep(0.25)
    return False


@contextlib.contextmanager
def channel(url: str, name: str = "qsched") -> Iterator[Any]:
    """A short-lived blocking channel, closed with its connection on exit."""
    conn = connect(url, name=name)
    try:
        yield conn.channel()
    finally:
        if conn.is_open:
            conn.close()


def properties(
    message: Message,
    *,
    message_id: str,
    user_id: str | None,
    priority: int = 0,
    reply_to: str | None = None,
    correlation_id: str | None = None,
    headers: Mapping[str, Any] | None = None,
    timestamp: datetime | None = None,
) -> pika.BasicProperties:
    """The AMQP properties every qsched message carries (DESIGN section 3).

    Args:
        message: the model being sent; its schema names the ``type``.
        message_id: job, command or event id.
        user_id: the authenticated user; RabbitMQ refuses a message whose user_id differs.
        priority: 0-9, higher is more urgent.
        reply_to: queue for the answer.
        correlation_id: id of the message this answers.
        headers: extra headers, e.g. ``traceparent``.
        timestamp: defaults to now.
    """
    return pika.BasicProperties(
        content_type=CONTENT_TYPE,
        type=message.type_name(),
        message_id=message_id,
        timestamp=int(timestamp.timestamp() if timestamp else time.time()),
        delivery_mode=2,
        user_id=user_id,
        priority=priority,
        reply_to=reply_to,
        correlation_id=correlation_id,
        headers=dict(headers or {}),
    )


def ack_later(channel: Any, delivery_tag: int, multiple: bool = False) -> None:
    """Ack a delivery on a blocking channel without waiting for the socket.

    `BlockingChannel.basic_ack` flushes every ack with an I/O poll of its own; for stream
    readers and the owner, which ack every record, that poll was a large share of their time
    (a tenth of the owner's CPU per job in `bench profile`). Written on the channel under the
    blocking wrapper instead, the ack goes out with the connection's next poll, in order with
    everything else sent on the connection.
    """
    channel._impl.basic_ack(delivery_tag=delivery_tag, multiple=multiple)
