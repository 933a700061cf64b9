"""Activation and the log follower: snapshot + tail into a state, then keep reading the log.

Theory of operation. The active owner consumes its own event stream for as long as it is active.
At activation it reads the pointer to the last snapshot (``<ns>.snapshot``, a one-message queue),
publishes a marker, and reads the stream from the snapshot (or from the start when there is none,
or retention dropped it) up to the marker: snapshot + tail = the state. From then on the same
consumer follows the log live: it learns the offset of every `job.accepted` event (so a job's
sequence can be read back just before it starts), of every job's first and final events (so its
result and history are read without a scan, `consumers.joblog`) and of every snapshot this owner writes (then it
updates the pointer). The follower has caught up when the last event it saw is the last one the
owner applied; snapshots are only taken then, so a snapshot never misses an offset.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from brokers.connection import ack_later
from brokers.stream import close_stream_channel
from brokers.topology import Topology
from consumers.core.snapshot import from_data
from consumers.core.state import OwnerState
from consumers.errors import OwnerError
from consumers.joblog import JobOffsets
from consumers.publish import BATCH_ID_HEADER, JOB_ID_HEADER, Publisher
from consumers.sequences import SequenceStore, batch_key
from schemas.codec import decode
from schemas.enums import JobState
from schemas.errors import DecodeError
from schemas.events import OwnerActivating, Snapshot, SnapshotPointer, Topic, make_event, payload_of
from schemas.messages import Event

log = logging.getLogger(__name__)

FOLLOW_PREFETCH = 2000
REPLAY_TIMEOUT_S = 120.0
ACCEPTING = (Topic.JOB_ACCEPTED, Topic.JOB_RESUBMITTED)  # events that carry a sequence


class ReplayFailed(OwnerError):
    """The log could not be read back up to the activation marker."""


class LogFollower:
    """One consumer on the event stream: replay at activation, then follow."""

    def __init__(
        self,
        connection: BlockingConnection,
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
        self._channel: BlockingChannel | None = None
        self._state: OwnerState | None = None
        self._replaying = False
        self._marker: str | None = None
        self._expect_snapshot: str | None = None
        self._from_offset = 0
        self._half_life_s = 3600.0
        self.my_snapshots: set[str] = set()
        self.last_seen: str | None = None
        self.replayed = 0

    # ---- activation ------------------------------------------------------------------------

    def read_pointer(self, channel: BlockingChannel) -> SnapshotPointer | None:
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
        channel = self._connection.channel()
        channel.basic_qos(prefetch_count=FOLLOW_PREFETCH)
        channel.basic_consume(
            self._topology.events_stream,
            self._on_record,
            arguments={"x-stream-offset": offset},
        )
        self._channel = channel

    def _stop(self) -> None:
        if self._channel is not None and self._channel.is_open:
            close_stream_channel(self._channel)
        self._channel = None

    # ---- every record ----------------------------------------------------------------------

    def _on_record(self, channel: BlockingChannel, method: Any, props: Any, body: bytes) -> None:
        ack_later(channel, method.delivery_tag)
        headers = props.headers or {}
        offset = int(headers.get("x-stream-offset", -1))
        topic = method.routing_key
        self.last_seen = props.message_id
        job_id = headers.get(JOB_ID_HEADER)
        if job_id:
            self.jobs.learn(str(job_id), topic, offset)
            if topic in ACCEPTING:
                self._store.learn(str(job_id), offset)
        elif topic == Topic.BATCH_CREATED and headers.get(BATCH_ID_HEADER):
            self._store.learn(batch_key(str(headers[BATCH_ID_HEADER])), offset)
        if self._replaying:
            self._replay_record(props, body, offset)
        elif topic == Topic.OWNER_SNAPSHOT and props.message_id in self.my_snapshots:
            self.my_snapshots.discard(props.message_id)
            pointer = SnapshotPointer(
                offset=offset, event_id=props.message_id, term=self._publisher.term or 0
            )
            self._publisher.send(  # confirmed later, with the owner's (not inside a callback)
                "", self._topology.snapshot_queue, pointer, message_id=props.message_id
            )

    def _replay_record(self, props: Any, body: bytes, offset: int) -> None:
        if offset < self._from_offset:
            return  # a stream consumer starts at its chunk's first record
        self.replayed += 1
        try:
            event = decode(body, props.type, Event, self._max_bytes)
        except DecodeError:
            return
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
            self._replaying = False

    # ---- while active ------------------------------------------------------------------------

    def caught_up(self, state: OwnerState) -> bool:
        """Whether every event the owner applied has come back through the log."""
        return self.last_seen == state.last_event_id

    def wait_for_offset(self, job_id: str, timeout_s: float = 5.0) -> int | None:
        """Let the follower read until it learned where `job_id`'s acceptance is."""
        deadline = time.monotonic() + timeout_s
        while job_id not in self._store.offsets and time.monotonic() < deadline:
            self._connection.process_data_events(time_limit=0.05)
        return self._store.offsets.get(job_id)

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
