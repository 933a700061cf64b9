"""What a run needs besides the job's facts: its sequence and, for a job of a batch, its
variables; and the check of a waiting job's sequence against a new calibration.

A job's own sequence is kept under its id, a batch's under `batch_key` (one copy for all its
jobs); `consumers.owner.sequences.SequenceStore` has it in memory or reads it back from the log at the
offset the owner counted when it wrote the event that carries it.
"""

from __future__ import annotations

from typing import Any

from brokers.connection import Connection
from consumers.core.order import Waiting
from consumers.core.state import OwnerState
from consumers.owner.deliveries import recheck
from consumers.owner.sequences import SequenceMissing, SequenceStore, batch_key
from schemas.enums import ErrorCode
from schemas.events import JobAccepted
from schemas.jobs import JobError
from schemas.sequence import SequenceChecker


class RunSequences:
    """Sequences (and variables) for runs, read from memory or the log."""

    def __init__(
        self,
        store: SequenceStore,
        connection: Connection,
        stream: str,
        checker: SequenceChecker,
    ) -> None:
        self.store = store
        self._connection = connection
        self._stream = stream
        self.checker = checker

    @staticmethod
    def key(job: Waiting) -> str:
        """Where the job's sequence is kept: its own, or its batch's."""
        return batch_key(job.batch_id) if job.batch_id else job.job_id

    def fetch(self, job: Waiting) -> str:
        """The job's sequence (its batch's, parametrized, for a job of a batch).

        Raises:
            SequenceMissing: not in memory, and not where the log should have it.
        """
        return self.store.fetch(self.key(job), self._connection, self._stream)

    def accepted(self, job_id: str) -> JobAccepted | None:
        """The request of a job that ended, read back from the log (None: no record known)."""
        return self.store.fetch_accepted(job_id, self._connection, self._stream)

    @staticmethod
    def variables(state: OwnerState, job: Waiting) -> dict[str, Any] | None:
        """A batch job's variables (None: a job with a sequence of its own)."""
        batch = state.batches.get(job.batch_id or "")
        entry = batch.jobs.get(job.job_id) if batch is not None else None
        return entry[1] if entry is not None else None

    def warm(self, job: Waiting) -> None:
        """Read the job's sequence back into memory now if it is not there (while another job
        runs), so its start does not wait for the log."""
        key = self.key(job)
        if self.store.in_memory(key):
            return
        try:
            sequence = self.store.fetch(key, self._connection, self._stream)
        except SequenceMissing:
            return  # found missing again when it is about to start; reported then
        self.store.keep(key, sequence)

    def recheck(self, job: Waiting, shots: int, device: Any, epoch: int) -> JobError | None:
        """The job's problem with the device of calibration `epoch`, or None."""
        try:
            sequence = self.fetch(job)
        except SequenceMissing as exc:
            return JobError(code=ErrorCode.INTERNAL, message=str(exc))
        return recheck(
            self.checker, sequence, shots, device, epoch, parametrized=job.batch_id is not None
        )
