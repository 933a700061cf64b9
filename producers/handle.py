"""`JobHandle`: one submitted job, as the submitter sees it.

A handle is a light view onto its client, known only as a `producers.port.ClientPort` (the
client passes itself): the result, progress and pushed positions it reports are what the
client's reply inbox (`producers.replies`) has received. Handles are equal and hash by job id
(users keep them in sets and dicts); `producers.futures` waits on many at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from producers.errors import CommandRefused
from producers.port import ClientPort
from schemas.control import ControlReply
from schemas.enums import CommandName, ErrorCode, JobState
from schemas.jobs import JobProgress, JobResult
from schemas.reports import QueueEntry

ProgressCallback = Callable[[JobProgress], None]
PositionCallback = Callable[[QueueEntry], None]


@dataclass(eq=False)
class JobHandle:
    """A submitted job; `result` waits for its final answer."""

    job_id: str
    job_class: str
    shots: int
    client: ClientPort = field(repr=False)
    on_progress: ProgressCallback | None = field(default=None, repr=False)
    last_progress: JobProgress | None = None
    span_context: Any = field(default=None, repr=False)
    queued_at: datetime | None = None  # when the broker confirmed the publish
    on_position: PositionCallback | None = field(default=None, repr=False)
    last_position: QueueEntry | None = None  # pushed by the owner (`position_updates` jobs)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, JobHandle):
            return NotImplemented
        return self.job_id == other.job_id

    def __hash__(self) -> int:
        return hash(self.job_id)

    def result(self, timeout: float | None = None) -> JobResult:
        """Wait for the final result.

        Raises:
            ResultTimeout: nothing final arrived within `timeout` seconds.
        """
        return self.client.wait_result(self.job_id, timeout)

    def done(self) -> bool:
        """Whether the final result has arrived (reads what is already delivered)."""
        self.client.poll(0)
        return self.job_id in self.client.results

    def status(self) -> JobState:
        """QUEUED, RUNNING (progress seen) or the final state."""
        self.client.poll(0)
        if self.job_id in self.client.results:
            return self.client.results[self.job_id].state
        return JobState.RUNNING if self.last_progress is not None else JobState.QUEUED

    def cancel(self, timeout: float = 10.0) -> ControlReply:
        """Ask the owner to cancel this job (queued or running).

        Raises:
            CommandRefused: the owner refused (e.g. the job already ended, or the owner does not
                know it); `error` holds the structured reason.
            NoOwnerAnswered: no owner answered within `timeout` seconds.
        """
        reply = self.client.control(CommandName.CANCEL, job_id=self.job_id, timeout=timeout)
        if not reply.ok:
            raise CommandRefused(f"cancel {self.job_id} refused: {reply.message}", reply.error)
        return reply

    def queue_entry(self, timeout: float = 10.0) -> QueueEntry | None:
        """The job's place in the owner's backlog (None once it ended)."""
        try:
            entries = self.client.queue(job_id=self.job_id, timeout=timeout)
        except CommandRefused as refused:
            if getattr(refused.error, "code", None) is ErrorCode.NOT_WAITING:  # it ended
                return None
            raise
        return entries[0] if entries else None

    def position(self, timeout: float = 10.0) -> int | None:
        """1 when the job starts next, 0 while it runs; None when held, unknown or ended."""
        entry = self.queue_entry(timeout)
        return entry.position if entry is not None else None

    def eta(self, timeout: float = 10.0) -> float | None:
        """Estimated seconds until the job starts (0 while it runs; None when unknown)."""
        entry = self.queue_entry(timeout)
        return entry.eta_s if entry is not None else None
