"""Answers about one job without scanning the log: where its records are, and who waits for it.

Theory of operation. The log follower (`consumers.owner.recovery`) sees every record the owner writes,
with its stream offset. `JobOffsets` keeps, per job, the offset of its first event and of its
final one (the last `REMEMBERED_JOBS` jobs, like the state's own memory of job ids); it is stored
in every ``owner.snapshot`` (compactly, aligned with the snapshot's job owners) and loaded back
at activation, so a new owner knows it too. A
`result` command is answered from the results the shell holds in memory, else by reading the one
record at the job's final offset; a `history` command by reading the job's own stretch of the
log (first to final offset), keeping that job's records. Neither reads more of the stream than
the job itself spans (from the start of the chunk holding its first record), however long the
log is. Reads run in the owner's loop, so they are bounded: at most `READ_TIMEOUT_S` and
`MAX_HISTORY_EVENTS` events (progress events and the sequence are left out of a history).

``result --wait`` registers the asker's reply queue as a watcher of the job: when the job ends,
its result goes there too (and its progress while it runs), so nobody polls. Watchers live in
this activation's memory; a client re-sends its request now and then, which also registers it
again with a new owner after a takeover.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from brokers.connection import Connection
from brokers.stream import StreamRecord, events_of, job_ids_of, scan
from consumers.core.outcomes import AnswerFromLog
from consumers.core.run_fold import REMEMBERED_JOBS
from schemas.control import ControlReply
from schemas.enums import CommandName, ErrorCode
from schemas.envelope import Event
from schemas.events import FINAL_TOPICS, Topic
from schemas.jobs import JobError, JobProgress, JobResult
from schemas.reports import SessionSummary
from schemas.wire import Message

log = logging.getLogger(__name__)

FINAL = frozenset(str(topic) for topic in FINAL_TOPICS.values())
NOT_YET = -1
MAX_WATCHERS = 10_000
READ_TIMEOUT_S = 5.0
# Records in flight while reading: the reader stops acking once it has its records, so the
# stream stops sending (pika would otherwise dispatch the rest of the stream in one call).
READ_PREFETCH = 100
MAX_HISTORY_EVENTS = 1000
SHIFT_LIMIT = 1000  # records a read looks past an offset for the job's final event


class JobOffsets:
    """Job id -> [offset of its first event, offset of its final event or NOT_YET]."""

    def __init__(self, limit: int = REMEMBERED_JOBS) -> None:
        self._jobs: OrderedDict[str, list[int]] = OrderedDict()
        self._limit = limit
        self.last = NOT_YET  # highest offset learned

    def learn(self, job_id: str, topic: str, offset: int) -> None:
        """One record of `job_id` at `offset` (the follower calls this for every job record)."""
        if offset < 0:
            return
        self.last = max(self.last, offset)
        entry = self._jobs.get(job_id)
        if entry is None:
            entry = self._jobs[job_id] = [offset, NOT_YET]
            if len(self._jobs) > self._limit:
                self._jobs.popitem(last=False)
        if topic in FINAL:
            entry[1] = offset

    def first(self, job_id: str) -> int | None:
        """Offset of the job's first event (None: not known)."""
        entry = self._jobs.get(job_id)
        return entry[0] if entry is not None else None

    def final(self, job_id: str) -> int | None:
        """Offset of the job's final event (None: not ended, or not known)."""
        entry = self._jobs.get(job_id)
        return entry[1] if entry is not None and entry[1] != NOT_YET else None

    def __len__(self) -> int:
        return len(self._jobs)

    def to_data(self, order: Iterable[str]) -> list[int | None]:
        """The index for a snapshot, compact: for each job of `order` (the snapshot's `owners`,
        so no job id is written twice), ``None`` when unknown, else the first offset as a
        difference from the previous job's and the final one from the first (``None``: not
        yet). About 5 bytes a job, so a snapshot of 100,000 jobs stays small."""
        out: list[int | None] = []
        previous = 0
        for job_id in order:
            entry = self._jobs.get(job_id)
            if entry is None:
                out.append(None)
                continue
            first, final = entry
            out += [first - previous, None if final == NOT_YET else final - first]
            previous = first
        return out

    def load(self, order: Iterable[str], data: list[int | None]) -> None:
        """Take the index a snapshot recorded with `to_data` over the same `order` (records
        after the snapshot are learned as they come)."""
        values = iter(data)
        previous = 0
        for job_id in order:
            step = next(values, None)
            if step is None:
                continue
            first = previous + step
            after = next(values, None)
            final = NOT_YET if after is None else first + after
            self._jobs[job_id] = [first, final]
            self.last = max(self.last, first, final)
            previous = first
        while len(self._jobs) > self._limit:
            self._jobs.popitem(last=False)


class JobAnswers:
    """Completes `result`/`history` replies and sends results to those waiting for them.

    Args:
        offsets: what the follower learned of each job's records.
        results: the results the owner remembers (recent jobs), by job id.
        send: publishes a message to a reply queue (``send(reply_to, message, correlation_id)``).
        connection: the owner's connection (records are read on a channel of their own).
        stream: the event stream.
        max_bytes: largest record decoded.
        session_of: the owner's word on a session (a history names the job's session).
    """

    def __init__(
        self,
        offsets: JobOffsets,
        results: OrderedDict[str, JobResult],
        send: Callable[[str, Message, str], None],
        connection: Connection,
        stream: str,
        max_bytes: int,
        session_of: Callable[[str], SessionSummary | None] = lambda _: None,
    ) -> None:
        self.session_of = session_of
        self.offsets = offsets
        self.results = results
        self._send = send
        self._connection = connection
        self._stream = stream
        self._max_bytes = max_bytes
        self.watchers: OrderedDict[str, set[str]] = OrderedDict()

    # ---- commands ------------------------------------------------------------------------------

    def answer(self, effect: AnswerFromLog) -> None:
        """Fill in the reply with the job's result or history and send it."""
        reply = effect.reply
        job_id = effect.job_id
        if reply.command is CommandName.RESULT:
            update: dict[str, Any] = {}
            result = self.result_of(job_id) if effect.ended else None
            if result is not None:
                update = {"result": result}
            elif effect.ended:
                update = _gone(job_id, "its result")
            elif effect.watch and effect.reply_to:
                self.watch(job_id, effect.reply_to)
        else:
            update = self._history_update(job_id)
        if effect.reply_to:
            self._send(effect.reply_to, reply.model_copy(update=update), reply.command_id)

    def _history_update(self, job_id: str) -> dict[str, Any]:
        first = self.offsets.first(job_id)
        if first is None:
            return _gone(job_id, "its first event")
        last = self.offsets.final(job_id)
        events = self.read(
            job_id, first, last if last is not None else self.offsets.last, last is not None
        )
        if not events:
            return _gone(job_id, "its events")
        session_id = _session_of(events)
        session = self.session_of(session_id) if session_id else None
        return {"history": events, "session": session}

    def answer_batch(self, reply_to: str | None, reply: ControlReply, job_ids: list[str]) -> None:
        """A `batch-results` reply completed with the results of `job_ids` (memory or log)."""
        found = [self.result_of(job_id) for job_id in job_ids]
        if reply_to:
            update = {"results": [r for r in found if r is not None]}
            self._send(reply_to, reply.model_copy(update=update), reply.command_id)

    def result_of(self, job_id: str) -> JobResult | None:
        """The job's final result: from memory, else the record at its final offset."""
        kept = self.results.get(job_id)
        if kept is not None:
            return kept
        offset = self.offsets.final(job_id)
        if offset is None:
            return None
        found = self.read(job_id, offset, offset, final=True)
        return found[-1].result if found else None

    # ---- watchers ------------------------------------------------------------------------------

    def watch(self, job_id: str, reply_to: str) -> None:
        """Send the job's result (and progress) to `reply_to` too."""
        self.watchers.setdefault(job_id, set()).add(reply_to)
        self.watchers.move_to_end(job_id)
        while len(self.watchers) > MAX_WATCHERS:
            self.watchers.popitem(last=False)

    def forward(self, message: Message | None) -> None:
        """A result or progress the owner just sent its submitter: its watchers get it too."""
        if isinstance(message, JobResult):
            for reply_to in self.watchers.pop(message.job_id, ()):
                self._send(reply_to, message, message.job_id)
        elif isinstance(message, JobProgress):
            for reply_to in self.watchers.get(message.job_id, ()):
                self._send(reply_to, message, message.job_id)

    # ---- reading -------------------------------------------------------------------------------

    def read(self, job_id: str, first: int, last: int, final: bool = False) -> list[Event]:
        """The job's events from offset `first` to `last` (progress and sequences left out).

        The offsets are the ones the owner counted as it wrote (`consumers.owner.recovery`); should a
        fenced-off owner's stray records have shifted the log, a read that wants the job's
        `final` event reads on past `last` until it has it (at most `SHIFT_LIMIT` records).
        """
        found: list[Event] = []

        def visit(record: StreamRecord) -> bool:
            if job_id in job_ids_of(record) and record.routing_key != Topic.JOB_PROGRESS:
                for event in events_of(record, self._max_bytes):
                    mine = event.job_id == job_id and event.topic != Topic.JOB_PROGRESS
                    if mine and len(found) < MAX_HISTORY_EVENTS:
                        found.append(_without_sequence(event))
            if record.offset < last:
                return False
            ended = bool(found) and found[-1].topic in FINAL
            return not final or ended or record.offset >= last + SHIFT_LIMIT

        done = scan(
            self._connection,
            self._stream,
            first,
            visit,
            prefetch=READ_PREFETCH,
            timeout_s=READ_TIMEOUT_S,
        )
        if not done:
            log.warning(
                "read %s's records %d..%d: stopped after %ss", job_id, first, last, READ_TIMEOUT_S
            )
        return found


def _session_of(events: list[Event]) -> str | None:
    """The session a job's acceptance names (None: none)."""
    for event in events:
        if event.topic == Topic.JOB_ACCEPTED:
            job = event.data.get("job")
            found = job.get("session_id") if isinstance(job, dict) else None
            return found if isinstance(found, str) and found else None
    return None


def _without_sequence(event: Event) -> Event:
    """A job.accepted event without its sequence (the bulk of it; the submitter has it)."""
    job = event.data.get("job")
    if event.topic != Topic.JOB_ACCEPTED or not isinstance(job, dict):
        return event
    job = dict(job)
    job["sequence"] = ""
    return event.model_copy(update={"data": {**event.data, "job": job}})


def _gone(job_id: str, what: str) -> dict[str, Any]:
    error = JobError(
        code=ErrorCode.UNKNOWN_JOB,
        message=f"{what} of job {job_id} is no longer in the owner's index or the log",
    )
    return {"ok": False, "error": error, "message": error.message}
