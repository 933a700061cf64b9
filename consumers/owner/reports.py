"""Backend reports, moved from the backend's threads to the owner's connection thread.

A backend calls the `RunReports` it was given (`consumers.backends.base`) from whatever thread it
likes; the owner gives a `ReportInbox`: each report becomes an input in the shell's inbox and
the connection is woken (thread-safely) so the loop handles it at once.
"""

from __future__ import annotations

import logging
import queue

from brokers.connection import Connection
from consumers.backends.base import RunOutcome
from consumers.core.step import Finished, Input, Note, Operational, Progress

log = logging.getLogger("consumers.owner")


class ReportInbox:
    """A run's reports (`RunReports`), moved from backend threads to the connection thread."""

    def __init__(self, inbox: queue.SimpleQueue[Input], connection: Connection) -> None:
        self._inbox = inbox
        self._connection = connection

    def _put(self, given: Input) -> None:
        self._inbox.put(given)
        try:
            self._connection.add_callback_threadsafe(lambda: None)
        except Exception:  # the connection is gone; the next owner re-runs the job
            log.debug("could not wake the owner's loop", exc_info=True)

    def progress(self, job_id: str, shots_done: int, counts: dict[str, int]) -> None:
        """Counts so far (of this run)."""
        self._put(Progress(job_id, dict(counts)))

    def finished(self, outcome: RunOutcome) -> None:
        """The run is over."""
        self._put(Finished(outcome.job_id, dict(outcome.counts), outcome.error, outcome.canceled))

    def operational(self, up: bool, reason: str) -> None:
        """The QPU went down or came back."""
        self._put(Operational(up, reason))

    def note(self, job_id: str, message: str) -> None:
        """Something an operator should know."""
        self._put(Note(job_id, message))
