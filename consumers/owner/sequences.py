"""Where a waiting job's sequence is: in memory (recent jobs, up to a byte budget) or in the log.

The owner's state holds each job's scheduling facts, never its sequence. The sequence travels in
the job's `job.accepted` event, or once for all the jobs of a batch in its `batch.created`
event (kept here under `batch_key`); this store keeps the sequences of recently accepted jobs
and batches in memory and, for the others, the stream offset of the event that carries them,
learned by the log follower, from which the sequence is read back just before the job starts.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable

from brokers.connection import Connection
from brokers.stream import BATCH_ID_HEADER, StreamRecord, events_of, job_ids_of, scan
from consumers.errors import OwnerError
from schemas.events import BatchCreated, JobAccepted, Topic, payload_of

log = logging.getLogger(__name__)


RETIRED_JOBS = 10_000
SHIFT_LIMIT = 1000  # records a read by offset looks past the offset for its record
ACCEPTING = (Topic.JOB_ACCEPTED, Topic.JOB_RESUBMITTED)  # events that carry a job's sequence


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
        self, job_id: str, connection: Connection, stream: str
    ) -> JobAccepted | None:
        """The request of a job that ended, read back from the log (None: no record known)."""
        offset = self.retired.get(job_id, self.offsets.get(job_id))
        record = (
            _read_one(connection, stream, offset, _is_sequence_of(job_id))
            if offset is not None
            else None
        )
        if record is None:
            return None
        for event in events_of(record, self._max_bytes):
            try:
                if event.job_id == job_id and event.topic in ACCEPTING:
                    return payload_of(event, JobAccepted)
            except ValueError as exc:
                log.warning("job %s's record at offset %s: %s", job_id, offset, exc)
        return None

    def in_memory(self, job_id: str) -> bool:
        """Whether the job's sequence is held here."""
        return job_id in self._bodies

    def fetch(
        self,
        job_id: str,
        connection: Connection,
        stream: str,
    ) -> str:
        """The job's sequence, read back from the log if it is not in memory.

        Raises:
            SequenceMissing: no copy in memory and no offset known (or the record is gone).
        """
        kept = self._bodies.get(job_id)
        if kept is not None:
            return kept
        offset = self.offsets.get(job_id)  # counted when the event was sent
        if offset is None:
            raise SequenceMissing(f"no copy of {job_id}'s sequence is known")
        record = _read_one(connection, stream, offset, _is_sequence_of(job_id))
        for event in events_of(record, self._max_bytes) if record is not None else []:
            try:
                if event.job_id == job_id and event.topic in ACCEPTING:
                    return payload_of(event, JobAccepted).job.sequence
                if event.topic == Topic.BATCH_CREATED:
                    created = payload_of(event, BatchCreated)
                    if batch_key(created.batch_id) == job_id:
                        return created.sequence
            except ValueError as exc:
                raise SequenceMissing(f"{job_id}'s record at offset {offset}: {exc}") from None
        raise SequenceMissing(f"the log has no sequence of {job_id} at offset {offset}")


def _read_one(
    connection: Connection,
    stream: str,
    offset: int,
    wanted: Callable[[StreamRecord], bool],
    timeout_s: float = 5.0,
) -> StreamRecord | None:
    """The first record at or after `offset` that is the one `wanted` (None: none came within
    `timeout_s`, or not within `SHIFT_LIMIT` records: a fenced-off owner's stray records can
    only have moved it up)."""
    got: list[StreamRecord] = []

    def visit(record: StreamRecord) -> bool:
        if wanted(record):
            got.append(record)
            return True
        return record.offset >= offset + SHIFT_LIMIT

    scan(connection, stream, offset, visit, prefetch=1, timeout_s=timeout_s)
    return got[0] if got else None


def _is_sequence_of(key: str) -> Callable[[StreamRecord], bool]:
    """Whether a record carries the sequence kept under `key` (a job id or `batch_key`)."""
    if key.startswith("batch "):
        batch_id = key.removeprefix("batch ")
        return lambda r: r.headers.get(BATCH_ID_HEADER) == batch_id
    return lambda r: key in job_ids_of(r)  # the first of its records from its acceptance on
