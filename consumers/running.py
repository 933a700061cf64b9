"""The job on the QPU: its record, how backend reports reach the owner's thread, its result."""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pika.exceptions
from pika.adapters.blocking_connection import BlockingConnection

from consumers.backends.base import RunOutcome
from consumers.spans import JobSpans
from schemas.enums import ErrorCode, JobState
from schemas.messages import JobError, JobRequest, JobResult, Timings


@dataclass
class Running:
    """The job on the QPU."""

    job: JobRequest
    user: str | None
    reply_to: str | None
    started_at: datetime
    attempt: int
    preemptions: int = 0
    headers: dict[str, Any] = field(default_factory=dict)
    cancel_error: JobError | None = None
    spans: JobSpans | None = None
    prior_counts: dict[str, int] = field(default_factory=dict)
    preempt_reason: str | None = None
    epoch: int = 0


class Sink:
    """Backend reports, moved from backend threads to the connection thread.

    Each report is queued in `inbox` and the connection is asked (thread-safely) to run `drain`.
    """

    def __init__(
        self,
        connection: BlockingConnection,
        inbox: queue.SimpleQueue[Any],
        drain: Callable[[], None],
    ) -> None:
        self._connection = connection
        self._inbox = inbox
        self._drain = drain

    def _wake(self) -> None:
        # If the connection is gone, the next owner re-runs the job from its in-flight record.
        with contextlib.suppress(pika.exceptions.AMQPError, RuntimeError):
            self._connection.add_callback_threadsafe(self._drain)

    def progress(self, job_id: str, shots_done: int, counts: dict[str, int]) -> None:
        """Counts so far."""
        self._inbox.put(("progress", job_id, shots_done, counts))
        self._wake()

    def finished(self, outcome: RunOutcome) -> None:
        """The run is over."""
        self._inbox.put(("finished", outcome))
        self._wake()

    def operational(self, up: bool, reason: str) -> None:
        """The QPU went down or came back."""
        self._inbox.put(("operational", up, reason))
        self._wake()

    def note(self, job_id: str, message: str) -> None:
        """Something an operator should know."""
        self._inbox.put(("note", job_id, message))
        self._wake()


def merge_counts(earlier: dict[str, int], later: dict[str, int]) -> dict[str, int]:
    """Bitstring counts of two parts of one job added up."""
    merged = dict(earlier)
    for bits, count in later.items():
        merged[bits] = merged.get(bits, 0) + count
    return merged


def result_of(running: Running, outcome: RunOutcome, backend: str, now: datetime) -> JobResult:
    """The final result of a run: state from the outcome, timings from the record."""
    error: JobError | None
    if outcome.canceled:
        state = JobState.CANCELED
        error = running.cancel_error or JobError(
            code=ErrorCode.CANCELED_BY_OPERATOR, message="canceled"
        )
    elif outcome.error is not None:
        state, error = JobState.ERROR, outcome.error
    else:
        state, error = JobState.DONE, None
    job = running.job
    return JobResult(
        job_id=job.job_id,
        state=state,
        job_class=job.job_class,
        shots=job.shots,
        counts=outcome.counts,
        error=error,
        timings=Timings(
            queued_at=job.submitted_at,
            started_at=running.started_at,
            ended_at=now,
            queue_wait_s=(running.started_at - job.submitted_at).total_seconds(),
            execution_s=(now - running.started_at).total_seconds(),
        ),
        backend=backend,
        epoch=running.epoch,
        attempts=running.attempt,
        preemptions=running.preemptions,
    )
