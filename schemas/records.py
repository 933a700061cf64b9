"""Several events in one stream record.

The owner may write the events of one decision or of one intake (a batch's `batch.created`
and its jobs' `job.accepted`) as one record of the event log: one publish, one confirm, one
stream offset. An event is then addressed by the record's offset and its index in the record
(a one-event record, `schemas.envelope.Event` on its own, is index 0). Readers never decode
records themselves: `brokers.stream.events_of` turns either shape into the events it holds.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from schemas.envelope import Event
from schemas.wire import Message

MAX_EVENTS_PER_RECORD = 500


class EventRecord(Message):
    """Events written together, in order, as one stream record."""

    schema_name: ClassVar[str] = "qsched.EventRecord"

    events: list[Event] = Field(min_length=1, max_length=MAX_EVENTS_PER_RECORD)
