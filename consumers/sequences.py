"""Where a waiting job's sequence is: in memory (recent jobs, up to a byte budget) or in the log.

The owner's state holds each job's scheduling facts, never its sequence. The sequence travels in
the job's `job.accepted` event, or once for all the jobs of a batch in its `batch.created`
event (kept here under `batch_key`); this store keeps the sequences of recently accepted jobs
and batches in memory and, for the others, the stream offset of the event that carries them,
learned by the log follower, from which the sequence is read back just before the job starts.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from pika.adapters.blocking_connection import BlockingConnection

from brokers.connection import ack_later
from brokers.stream import close_stream_channel
from consumers.errors import OwnerError
from schemas.codec import decode
from schemas.errors import DecodeError
from schemas.events import BatchCreated, JobAccepted, Topic, payload_of
from schemas.messages import Event

log = logging.getLogger(__name__)


RETIRED_JOBS = 10_000


def batch_key(batch_id: str) -> str:
    """The key a batch's sequence is kept under (job ids never contain a space)."""
    return f"batch {batch_id}"


class SequenceMissing(OwnerError):
    """A job's sequence is neither in memory nor at a known offset of the log."""


class SequenceStore:
    """Sequences by job id: recent ones in memory, the rest by stream offset."""

    def __init__(self, budget_bytes: int, max_message_bytes: int) -> None:
        self._budget_bytes = budget_bytes
        self._max_bytes = max_message_bytes
        self._bodies: OrderedDict[str, str] = OrderedDict()
        self._held_bytes = 0
        self.offsets: dict[str, int] = {}
        self.retired: OrderedDict[str, int] = OrderedDict()  # jobs that ended ERROR (requeue)

    def keep(self, job_id: str, sequence: str) -> None:
        """Remember a newly accepted job's sequence (the oldest go when over budget)."""
        self._bodies[job_id] = sequence
        self._held_bytes += len(sequence)
        while self._held_bytes > self._budget_bytes and self._bodies:
            _, dropped = self._bodies.popitem(last=False)
            self._held_bytes -= len(dropped)

    def learn(self, job_id: str, offset: int) -> None:
        """Where the job's `job.accepted` event is in the log."""
        self.offsets[job_id] = offset

    def forget(self, job_id: str) -> None:
        """The job ended: drop what we know of its sequence."""
        body = self._bodies.pop(job_id, None)
        if body is not None:
            self._held_bytes -= len(body)
        self.offsets.pop(job_id, None)

    def retire(self, job_id: str) -> None:
        """The job ended ERROR: drop its sequence, keep where its request is (`qsched requeue`
        may take it back), for the last `RETIRED_JOBS` such jobs."""
        offset = self.offsets.get(job_id)
        self.forget(job_id)
        if offset is not None:
            self.retired[job_id] = offset
            while len(self.retired) > RETIRED_JOBS:
                self.retired.popitem(last=False)

    def fetch_accepted(
        self, job_id: str, connection: BlockingConnection, stream: str
    ) -> JobAccepted | None:
        """The request of a job that ended, read back from the log (None: no record known)."""
        offset = self.retired.get(job_id, self.offsets.get(job_id))
        record = _read_one(connection, stream, offset) if offset is not None else None
        if record is None:
            return None
        props, body = record
        try:
            event = decode(body, props.type, Event, self._max_bytes)
            if event.job_id == job_id:
                return payload_of(event, JobAccepted)
        except (DecodeError, ValueError) as exc:
            log.warning("job %s's record at offset %s: %s", job_id, offset, exc)
        return None

    def in_memory(self, job_id: str) -> bool:
        """Whether the job's sequence is held here."""
        return job_id in self._bodies

    def fetch(
        self,
        job_id: str,
        connection: BlockingConnection,
        stream: str,
        wait_for_offset: Callable[[str], int | None],
    ) -> str:
        """The job's sequence, read back from the log if it is not in memory.

        Raises:
            SequenceMissing: no copy in memory and no offset known (or the record is gone).
        """
        kept = self._bodies.get(job_id)
        if kept is not None:
            return kept
        offset = self.offsets.get(job_id)
        if offset is None:
            offset = wait_for_offset(job_id)
        if offset is None:
            raise SequenceMissing(f"no copy of {job_id}'s sequence is known")
        record = _read_one(connection, stream, offset)
        if record is not None:
            props, body = record
            try:
                event = decode(body, props.type, Event, self._max_bytes)
                if event.job_id == job_id:
                    return payload_of(event, JobAccepted).job.sequence
                created = (
                    payload_of(event, BatchCreated) if event.topic == Topic.BATCH_CREATED else None
                )
                if created is not None and batch_key(created.batch_id) == job_id:
                    return created.sequence
            except (DecodeError, ValueError) as exc:
                raise SequenceMissing(f"{job_id}'s record at offset {offset}: {exc}") from None
        raise SequenceMissing(f"the log has no sequence of {job_id} at offset {offset}")


def _read_one(
    connection: BlockingConnection, stream: str, offset: int, timeout_s: float = 5.0
) -> tuple[Any, bytes] | None:
    """The record at `offset` of a stream (None if none came within `timeout_s`).

    The channel is closed quietly (`close_stream_channel`), never cancelled.
    """
    got: list[tuple[Any, bytes]] = []
    channel = connection.channel()
    channel.basic_qos(prefetch_count=1)

    def on_record(ch: Any, method: Any, props: Any, body: bytes) -> None:
        if got:
            return  # no ack: the stream stops sending (else pika dispatches all of it at once)
        at = int((props.headers or {}).get("x-stream-offset", -1))
        if at >= offset:
            got.append((props, body))
        ack_later(ch, method.delivery_tag)

    channel.basic_consume(stream, on_record, arguments={"x-stream-offset": offset})
    deadline = time.monotonic() + timeout_s
    try:
        while not got and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.05)
    finally:
        close_stream_channel(channel)
    return got[0] if got else None
