"""What waits for publisher confirms: staged effects, acks, and the ids of what was sent.

Each entry carries the owner channel's delivery tag at the time it was staged, i.e. the last
publish it depends on (its input's events). `ready` hands back, in order, the entries whose tag
the broker has confirmed; since tags only grow, those are always a prefix. A refused event is
fatal (`PublishFailed`: the state is ahead of the log); a refused reply is reported to the caller
(it becomes a `job.reply_failed` event). Pure bookkeeping: no I/O here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from consumers.core.outcomes import Effect
from consumers.owner.publish import PublishFailed
from consumers.owner.settle import Delivery


@dataclass
class Ready:
    """What may be carried out now, in order, and the replies the broker refused."""

    effects: list[tuple[Effect, Delivery | None]] = field(default_factory=list)
    acks: list[Delivery] = field(default_factory=list)
    failed_replies: dict[str, tuple[str, str]] = field(default_factory=dict)  # id: (to, why)


class Pending:
    """Effects and acks waiting for their events' confirms."""

    def __init__(self) -> None:
        self._effects: deque[tuple[int, Effect, Delivery | None]] = deque()
        self._acks: deque[tuple[int, Delivery]] = deque()
        self._events: dict[str, int] = {}
        self._replies: dict[str, tuple[str, int]] = {}

    def __bool__(self) -> bool:
        return bool(self._effects or self._acks or self._events or self._replies)

    def effect(self, effect: Effect, delivery: Delivery | None, tag: int) -> None:
        """Carry `effect` out once everything up to `tag` is confirmed."""
        self._effects.append((tag, effect, delivery))

    def ack(self, delivery: Delivery, tag: int) -> None:
        """Ack `delivery` once everything up to `tag` is confirmed."""
        self._acks.append((tag, delivery))

    def event(self, event_id: str, tag: int) -> None:
        """An event was sent as publish `tag`; its refusal is fatal."""
        self._events[event_id] = tag

    def reply(self, message_id: str, reply_to: str, tag: int) -> None:
        """A reply was sent as publish `tag`; its refusal is reported."""
        self._replies[message_id] = (reply_to, tag)

    def ready(self, confirmed_through: int, failed: Mapping[str, str]) -> Ready:
        """Take what the confirms up to `confirmed_through` released.

        Args:
            confirmed_through: every publish with a tag up to this one is confirmed.
            failed: message id -> why, for publishes refused since the last call.

        Raises:
            PublishFailed: an event was refused.
        """
        refused = [m for m in failed if m in self._events]
        if refused:
            raise PublishFailed(f"events not confirmed: {', '.join(refused)}: {failed[refused[0]]}")
        out = Ready()
        out.failed_replies = {
            m: (self._replies[m][0], why) for m, why in failed.items() if m in self._replies
        }
        self._events = {m: t for m, t in self._events.items() if t > confirmed_through}
        self._replies = {m: v for m, v in self._replies.items() if v[1] > confirmed_through}
        while self._effects and self._effects[0][0] <= confirmed_through:
            _, effect, delivery = self._effects.popleft()
            out.effects.append((effect, delivery))
        while self._acks and self._acks[0][0] <= confirmed_through:
            out.acks.append(self._acks.popleft()[1])
        return out
