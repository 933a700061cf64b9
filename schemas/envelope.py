"""The event envelope: one state change of the owner, as the log and the events exchange hold it.

The payload models of its `data`, the topics and how an event is built are `schemas.events`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import AwareDatetime, Field, PrivateAttr

from schemas.enums import QPUState
from schemas.jobs import JobProgress, JobResult
from schemas.wire import Message, new_id, utc_now


class Event(Message):
    """One state change; published on ``<ns>.events`` with routing key `topic`.

    `topic` reads ``job.<state>``, ``qpu.<state>``, ``owner.<what>``, ``calibration.<what>`` or
    ``control.<command>``. Final job events carry the whole result, so a redelivered job can be
    answered from the log without running it again.
    """

    schema_name: ClassVar[str] = "qsched.Event"

    event_id: str = Field(default_factory=new_id)
    topic: str = Field(pattern=r"^[a-z]+\.[a-z0-9_.-]+$")
    at: AwareDatetime = Field(default_factory=utc_now)
    owner_id: str | None = None
    term: int | None = Field(default=None, ge=0, description="activation term of the writer")
    job_id: str | None = None
    job_class: str | None = None
    user: str | None = None
    reason: str | None = None
    qpu_state: QPUState | None = None
    result: JobResult | None = None
    progress: JobProgress | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    # The payload model `data` was dumped from (`schemas.events.make_event`), or parsed into on
    # first read (`schemas.events.payload_of`); memory only, never on the wire.
    _payload: Any = PrivateAttr(default=None)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy; the payload model comes along unless `update` replaces the data or topic."""
        copied = super().model_copy(update=update, deep=deep)
        if update and ("data" in update or "topic" in update):
            copied._payload = None
        return copied
