"""When the active owner writes an ``owner.snapshot``, and writing it: a policy apart from the shell.

As in eventsourcing, snapshots are taken by a policy, here every `every_events` applied events,
or every `every_s` seconds when anything happened at all; they are records of the log that its
readers recognise and skip, and the log's pointer moves to one only once it is confirmed
(`consumers.owner.recovery.LogFollower.point_to`). An activation loads the nearest snapshot and
the events after it. The shell counts what it applies (`seen`) and knows nothing else of this;
the owner's loop asks `write_if_due` once per turn. A snapshot too large to write is logged,
never fatal: the next activation then replays a longer tail.
"""

from __future__ import annotations

import logging
from typing import Protocol

from consumers.core.snapshot import to_data
from consumers.core.state import OwnerState
from consumers.owner.effects import Effects
from consumers.owner.publish import Publisher
from consumers.owner.recovery import LogFollower, snapshot_payload
from schemas.envelope import Event
from schemas.errors import MessageTooLarge
from schemas.events import Topic, make_event

log = logging.getLogger("consumers.owner")


class Writer(Protocol):
    """What writing a snapshot needs of the shell (`consumers.owner.shell.Shell` is one)."""

    state: OwnerState
    publisher: Publisher
    follower: LogFollower
    effects: Effects

    def emit(self, events: list[Event], together: bool = False) -> None:
        """Send and apply events."""

    def commit(self) -> None:
        """Wait for the confirms of everything sent, then carry out what waited for them."""


class Snapshots:
    """The snapshot policy of one activation: count applied events, write when due.

    Args:
        every_events: write after this many applied events (`owner.snapshot_every_events`).
        every_s: ...or after this long if any event was applied (`owner.snapshot_every_s`).
        now_s: the monotonic time the count starts from.
    """

    def __init__(self, every_events: int, every_s: float, now_s: float) -> None:
        self.every_events = every_events
        self.every_s = every_s
        self.events_since = 0
        self._last_s = now_s

    def seen(self, events: int = 1) -> None:
        """Count applied events (a long replay counts too: then a snapshot comes soon)."""
        self.events_since += events

    def write_if_due(self, shell: Writer, now_s: float) -> None:
        """Write an `owner.snapshot` when enough happened; point to it once it is confirmed."""
        due_by_time = now_s - self._last_s > self.every_s
        if self.events_since < self.every_events and not (due_by_time and self.events_since):
            return
        store = shell.effects.runs.store
        payload = snapshot_payload(shell.state, store, to_data, shell.follower.jobs)
        event = shell.publisher.stamp(make_event(Topic.OWNER_SNAPSHOT, payload))  # its id, now
        try:
            shell.emit([event])
        except MessageTooLarge as exc:  # never fatal: activation then replays a longer tail
            log.error("owner.snapshot not written: %s (raise owner.snapshot_max_bytes)", exc)
        else:
            offset = shell.publisher.last_offset
            shell.commit()
            shell.follower.point_to(event.event_id, offset)
        self.events_since = 0
        self._last_s = now_s
