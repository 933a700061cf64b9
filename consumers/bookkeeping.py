"""The owner's own bookkeeping headers, and when to believe them.

The owner writes ``x-qsched-*`` headers on the messages it publishes for itself: a preempted job
put back in its queue, the in-flight record of the running job. They carry the attempt number,
the preemptions so far, the counts already measured, the submitter and its reply queue. A
submitter can set the same headers, so they count only on messages published by the owner's own
AMQP user (RabbitMQ checks ``user_id`` against the authenticated user), and even then every value
is checked: a value of the wrong type or out of range is ignored, never an exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ATTEMPT_HEADER = "x-qsched-attempt"
PREEMPTIONS_HEADER = "x-qsched-preemptions"
COUNTS_HEADER = "x-qsched-counts"
USER_HEADER = "x-qsched-user"
REPLY_HEADER = "x-qsched-reply-to"
MAX_COUNTER = 1_000_000


@dataclass(frozen=True)
class Bookkeeping:
    """What the owner's headers say about a job (defaults: a fresh job)."""

    attempt: int = 1
    preemptions: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    user: str | None = None
    reply_to: str | None = None

    def headers(self) -> dict[str, Any]:
        """The headers that carry this bookkeeping."""
        return {
            ATTEMPT_HEADER: self.attempt,
            PREEMPTIONS_HEADER: self.preemptions,
            COUNTS_HEADER: dict(self.counts),
            USER_HEADER: self.user or "",
            REPLY_HEADER: self.reply_to or "",
        }


def read_bookkeeping(properties: Any, owner_user: str, shots: int | None = None) -> Bookkeeping:
    """The bookkeeping of a message, believed only if `owner_user` published it.

    Args:
        properties: the AMQP properties of the delivery.
        owner_user: the owner's AMQP user.
        shots: the job's shot count; counts adding up to more are ignored.

    Returns:
        The checked values; defaults for anything absent, malformed or not from the owner.
    """
    if getattr(properties, "user_id", None) != owner_user:
        return Bookkeeping()
    headers = getattr(properties, "headers", None)
    if not isinstance(headers, Mapping):
        return Bookkeeping()
    counts = _counts(headers.get(COUNTS_HEADER))
    if shots is not None and sum(counts.values()) > shots:
        counts = {}
    return Bookkeeping(
        attempt=_counter(headers.get(ATTEMPT_HEADER), 1, 1),
        preemptions=_counter(headers.get(PREEMPTIONS_HEADER), 0, 0),
        counts=counts,
        user=_text(headers.get(USER_HEADER)),
        reply_to=_text(headers.get(REPLY_HEADER)),
    )


def _counter(value: Any, default: int, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        return default
    return value if least <= value <= MAX_COUNTER else default


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) and value else None


def _counts(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    counts: dict[str, int] = {}
    for bits, count in value.items():
        bits = bits.decode("ascii", errors="replace") if isinstance(bits, bytes) else bits
        if not isinstance(bits, str):
            return {}
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            return {}
        counts[bits] = count
    return counts
