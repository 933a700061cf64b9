"""Activation and the log's offsets: snapshot + tail into a state, then offsets without reading.

Theory of operation. At activation the owner reads the pointer to the last snapshot
(``<ns>.snapshot``, a one-message queue), publishes a marker, and reads the stream from the
snapshot (or from the start when there is none, or retention dropped it) up to the marker:
snapshot + tail = the state, and the marker's offset is where the log ends. Then it stops
reading: it does not follow its own log (which sent every record, every sequence included, back
to the owner that had just written it: a second copy of each job's bytes through the broker and
the owner's CPU). While it holds the lease the owner is the only writer of its log, and a
stream gives consecutive offsets to the records it appends, so each event the owner publishes
lands at the offset after the previous one (`Publisher.next_offset`); `learn` records, for each
event as it is sent, the offset of every `job.accepted` and `batch.created` (where a sequence is
read back just before its job starts), of every job's first and final events (its result and
history are read without a scan, `consumers.owner.joblog`), and of each snapshot (its pointer is
written once the snapshot is confirmed). The log stays the single source of truth: nothing
is kept only in memory, every read by offset checks that the record it finds is the one it
wants (its event or job id) and reads on past records a fenced-off owner may have slipped in
(they only ever shift offsets up), and the next activation rebuilds everything from the log.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from brokers.connection import Channel, Connection
from brokers.stream import StreamRecord, close_stream_channel, consume, events_of
from brokers.topology import Topology
from consumers.core.snapshot import from_data
from consumers.core.state import OwnerState
from consumers.errors import OwnerError
from consumers.owner.joblog import JobOffsets
from consumers.owner.publish import Publisher
from consumers.owner.sequences import ACCEPTING, SequenceStore, batch_key
from schemas.codec import decode
from schemas.enums import JobState
from schemas.envelope import Event
from schemas.errors import DecodeError
from schemas.events import OwnerActivating, Snapshot, SnapshotPointer, Topic, make_event, payload_of

log = logging.getLogger(__name__)

FOLLOW_PREFETCH = 2000
REPLAY_TIMEOUT_S = 120.0


class ReplayFailed(OwnerError):
    """The log could not be read back up to the activation marker."""


class LogFollower:
    """Replays the event stream at activation, then learns offsets from what the owner sends."""

    def __init__(
        self,
        connection: Connection,
        topology: Topology,
        publisher: Publisher,
        store: SequenceStore,
        max_bytes: int,
        jobs: JobOffsets | None = None,
    ) -> None:
        self._connection = connection
        self._topology = topology
        self._publisher = publisher
        self._store = store
        self.jobs = jobs if jobs is not None else JobOffsets()
        self.max_bytes = max_bytes
        self._max_bytes = max_bytes
        self._channel: Channel | None = None
        self._state: OwnerState | None = None
        self._replaying = False
        self._marker: str | None = None
        self._expect_snapshot: str | None = None
        self._from_offset = 0
        self._half_life_s = 3600.0
        self.end_offset: int | None = None  # the activation marker's offset
        self.replayed = 0

    # ---- activation ------------------------------------------------------------------------

    def read_pointer(self, channel: Channel) -> SnapshotPointer | None:
        """The last snapshot's place in the log, left where it is (peeked, not taken)."""
        method, props, body = channel.basic_get(self._topology.snapshot_queue)
        if method is None:
            return None
        channel.basic_nack(method.delivery_tag, requeue=True)
        try:
            return decode(body, props.type, SnapshotPointer, self._max_bytes)
        except DecodeError:
            return None

    def replay(self, half_life_s: float, pointer: SnapshotPointer | None) -> OwnerState:
        """Rebuild the state from the last snapshot (if any) and the events after it."""
        self._half_life_s = half_life_s
        self._marker = str(uuid.uuid4())
        marker = make_event(Topic.OWNER_ACTIVATING, OwnerActivating(nonce=self._marker))
        self._marker = self._publisher.event(marker).event_id
        state = self._replay_from(pointer)
        if state is None:  # the snapshot is gone from the log (retention): read it all
            log.warning("snapshot %s not found in the log; replaying from the start", pointer)
            state = self._replay_from(None)
        assert state is not None
        self._stop()  # from here on the owner knows its offsets without reading them back
        if self.end_offset is not None:
            self._publisher.next_offset = self.end_offset + 1
        return state

    def _replay_from(self, pointer: SnapshotPointer | None) -> OwnerState | None:
        self._state = None if pointer is not None else OwnerState.for_half_life(self._half_life_s)
        self._expect_snapshot = pointer.event_id if pointer is not None else None
        self._from_offset = pointer.offset if pointer is not None else 0
        self._replaying = True
        self.replayed = 0
        self._start(pointer.offset if pointer is not None else "first")
        deadline = time.monotonic() + REPLAY_TIMEOUT_S
        while self._replaying:
            if time.monotonic() > deadline:
                raise ReplayFailed(
                    f"the activation marker did not come back in {REPLAY_TIMEOUT_S}s"
                )
            self._connection.process_data_events(time_limit=0.2)
            if self._expect_snapshot is not None and self._state is None and self.replayed:
                self._stop()
                return None
        return self._state

    def _start(self, offset: int | str) -> None:
        self._stop()
        self._channel = consume(
            self._connection, self._topology.events_stream, offset, self._on_record, FOLLOW_PREFETCH
        )

    def _stop(self) -> None:
        if self._channel is not None and self._channel.is_open:
            close_stream_channel(self._channel)
        self._channel = None

    # ---- every record ----------------------------------------------------------------------

    def _on_record(self, record: StreamRecord) -> None:
        if not self._replaying:
            return  # records in flight when the replay ended
        for event in events_of(record, self._max_bytes):
            self.learn(event, record.offset)
            self._replay_event(event, record.offset)

    def learn(self, event: Event, offset: int) -> None:
        """Where an event the owner just sent is in the log (`Publisher.last_offset`)."""
        batch_id = event.data.get("batch_id") if event.topic == Topic.BATCH_CREATED else None
        self._learn(event.topic, event.job_id or "", str(batch_id or ""), offset)

    def _learn(self, topic: str, job_id: str, batch_id: str, offset: int) -> None:
        if offset < 0:
            return
        if job_id:
            self.jobs.learn(job_id, topic, offset)
            if topic in ACCEPTING:
                self._store.learn(job_id, offset)
        elif topic == Topic.BATCH_CREATED and batch_id:
            self._store.learn(batch_key(batch_id), offset)

    def point_to(self, snapshot_id: str, offset: int) -> None:
        """A snapshot of this owner is confirmed in the log at `offset`: move the pointer there
        (the pointer's own confirm comes with the owner's next)."""
        if offset < 0:
            return
        pointer = SnapshotPointer(
            offset=offset, event_id=snapshot_id, term=self._publisher.term or 0
        )
        self._publisher.send("", self._topology.snapshot_queue, pointer, message_id=snapshot_id)

    def _replay_event(self, event: Event, offset: int) -> None:
        if offset < self._from_offset or not self._replaying:
            return  # a stream consumer starts at its chunk's first record
        self.replayed += 1
        if self._state is None:
            if event.event_id != self._expect_snapshot:
                return  # not the snapshot we were pointed at: the caller falls back
            snapshot = payload_of(event, Snapshot)
            self._state = from_data(snapshot.state, self._half_life_s)
            for job_id, job_offset in snapshot.offsets.items():
                self._store.learn(job_id, job_offset)
            self.jobs.load(snapshot.state.get("owners", {}), snapshot.jobs)
        self._state.apply(event)
        if event.event_id == self._marker:
            self.end_offset = offset
            self._replaying = False

    # ---- while active ------------------------------------------------------------------------

    def close(self) -> None:
        """Stop following."""
        self._stop()


def snapshot_payload(
    state: OwnerState,
    store: SequenceStore,
    to_data: Callable[[OwnerState], dict[str, Any]],
    index: JobOffsets | None = None,
) -> Snapshot:
    """The snapshot event's payload: the state, where each waiting job's sequence is, and
    where each remembered job's first and final events are."""
    jobs = list(state.waiting)
    if state.running is not None:
        jobs.append(state.running.job.job_id)
    offsets = {j: store.offsets[j] for j in jobs if j in store.offsets}
    batches = {batch_key(b) for b in state.batches}  # their jobs may still run or be retried
    offsets |= {k: o for k, o in store.offsets.items() if k in batches}
    ended = store.offsets | store.retired  # jobs that ended ERROR: `qsched requeue` takes them back
    offsets |= {j: o for j, o in ended.items() if state.finished.get(j) is JobState.ERROR}
    return Snapshot(
        state=to_data(state),
        offsets=offsets,
        jobs=index.to_data(state.owners) if index is not None else [],
    )
