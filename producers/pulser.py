"""`QSchedConnection`: run Pulser programs through qsched with Pulser's own API.

::

    connection = QSchedConnection()     # URL and namespace from QSCHED_AMQP_URL, QSCHED_NAMESPACE
    backend = pulser.QPUBackend(seq, connection)
    results = backend.run([{"runs": 100}], wait=True)       # Pulser SampledResults
    with backend.open_batch():                                # one session: iterative loops
        backend.run([{"runs": 100, "variables": {...}}])

A Pulser batch is a qsched batch (`producers.batches`): the sequence, parametrized or not, is
sent and checked once; each entry of ``job_params`` becomes a job that carries only its runs and
variables (the owner's backend builds the sequence before the run); an open batch takes more
jobs until Pulser closes it, and is a session (its jobs keep the owner's session grace). The
owner keeps batches, so a batch's status and results are found by its id from any process,
also after a restart: ``RemoteResults(batch_id, QSchedConnection(...)).results``. Statuses map
onto Pulser's ``JobStatus``/``BatchStatus``. `fetch_available_devices` returns the device the
owner publishes, a real Pulser ``Device``.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence as SequenceOf
from typing import Any

from pulser import Sequence
from pulser.backend.remote import (
    BatchStatus,
    JobStatus,
    RemoteConnection,
    RemoteResults,
    RemoteResultsError,
)
from pulser.devices import Device
from pulser.result import Result, SampledResult

from producers.batches import BatchHandle
from producers.client import QPUClient
from producers.jobs import DEFAULT_JOB_CLASS
from schemas.batches import BatchDetail
from schemas.enums import JobState
from schemas.jobs import JobResult

JOB_STATUS = {
    JobState.QUEUED: JobStatus.PENDING,
    JobState.RUNNING: JobStatus.RUNNING,
    JobState.DONE: JobStatus.DONE,
    JobState.ERROR: JobStatus.ERROR,
    JobState.REJECTED: JobStatus.ERROR,
    JobState.TIMED_OUT: JobStatus.ERROR,
    JobState.CANCELED: JobStatus.CANCELED,
}


class QSchedConnection(RemoteConnection):
    """A Pulser remote connection whose batches go through the qsched owner.

    Args:
        client: the `QPUClient` to use; one is made from `url`, `namespace` and the settings
            when omitted (and closed by `close`).
        url: broker URL(s), ``;``-separated (defaults to the settings' ``amqp_url``).
        namespace: qsched namespace (defaults to the settings' namespace).
        job_class: class of every job sent through this connection (default ``development``).
        priority: AMQP priority (0-9, higher first) of those jobs.
        timeout_s: how long ``wait=True`` waits for a batch, and a lookup for the owner.
    """

    def __init__(
        self,
        client: QPUClient | None = None,
        *,
        url: str | None = None,
        namespace: str | None = None,
        job_class: str = DEFAULT_JOB_CLASS,
        priority: int = 0,
        timeout_s: float | None = None,
    ) -> None:
        if client is not None and (url or namespace):
            raise ValueError("give either a client or url/namespace, not both")
        self._owns_client = client is None
        self.client = client or QPUClient(url=url, namespace=namespace)
        self.job_class = job_class
        self.priority = priority
        self.timeout_s = timeout_s
        self._batches: dict[str, BatchHandle] = {}

    def close(self) -> None:
        """Close the client this connection made (a client given to it stays open)."""
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> QSchedConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def supports_open_batch(self) -> bool:
        """qsched keeps an open batch (a session) until it is closed."""
        return True

    def fetch_available_devices(self) -> dict[str, Device]:
        """The device the owner validates against now.

        Raises:
            RuntimeError: no owner has published its device yet.
        """
        device = self.client.fetch_device()
        if device is None:
            raise RuntimeError("no qsched owner has published its device yet; is one running?")
        return {device.name: device}

    def submit(
        self,
        sequence: Sequence,
        wait: bool = False,
        open: bool = False,
        batch_id: str | None = None,
        **kwargs: Any,
    ) -> RemoteResults:
        """Create a batch of ``job_params`` (in `kwargs`), or add them to the open `batch_id`."""
        job_params = list(kwargs.get("job_params") or [])
        if batch_id is None:
            sequence = self._add_measurement_to_sequence(sequence)
            batch = self.client.submit_batch(
                sequence, job_params, self.job_class, self.priority, open=open
            )
            self._batches[batch.batch_id] = batch
            new = batch.handles
        else:
            batch = self._batch(batch_id)
            new = batch.add(job_params) if job_params else []
        if wait:
            for handle in new:
                handle.result(self.timeout_s)
        return RemoteResults(batch.batch_id, self, [h.job_id for h in new] if new else None)

    def _batch(self, batch_id: str) -> BatchHandle:
        """This process's handle on a batch, found through the owner when it made none."""
        found = self._batches.get(batch_id)
        if found is None:
            found = self._batches[batch_id] = self.client.batch(batch_id, self.timeout_s or 10.0)
        return found

    def _close_batch(self, batch_id: str) -> None:
        self._batch(batch_id).close()

    def _get_job_ids(self, batch_id: str) -> list[str]:
        return list(self._status(batch_id).job_ids)

    def _status(self, batch_id: str) -> BatchDetail:
        return self._batch(batch_id).status(self.timeout_s or 10.0)

    def _sampled(self, batch: BatchHandle, found: JobResult | None) -> Result | None:
        if found is None or found.state is not JobState.DONE:
            return None
        atoms = tuple(batch.atom_order)
        size = len(next(iter(found.counts), "")) or len(atoms)
        return SampledResult(
            atom_order=atoms[:size],
            meas_basis=batch.basis or "ground-rydberg",
            bitstring_counts=dict(found.counts),
        )

    def _progress(self, batch_id: str) -> dict[str, tuple[JobStatus, Result | None]]:
        batch = self._batch(batch_id)
        detail = self._status(batch_id)
        ended = {j for j, s in zip(detail.job_ids, detail.states, strict=True) if s != "QUEUED"}
        known = {j: self.client.results.get(j) for j in ended}
        if any(r is None for j, r in known.items() if JobState(self._state(detail, j)).is_final):
            known |= {r.job_id: r for r in batch.results(self.timeout_s or 30.0)}
        progress = {}
        for job_id, state in zip(detail.job_ids, detail.states, strict=True):
            progress[job_id] = (
                JOB_STATUS[JobState(state)],
                self._sampled(batch, known.get(job_id)),
            )
        return progress

    @staticmethod
    def _state(detail: BatchDetail, job_id: str) -> str:
        return detail.states[detail.job_ids.index(job_id)]

    def _query_job_progress(self, batch_id: str) -> Mapping[str, tuple[JobStatus, Result | None]]:
        return self._progress(batch_id)

    def _fetch_result(self, batch_id: str, job_ids: list[str] | None) -> SequenceOf[Result]:
        progress = self._progress(batch_id)
        wanted = job_ids if job_ids is not None else list(progress)
        results = []
        for job_id in wanted:
            status, result = progress.get(job_id, (JobStatus.PENDING, None))
            if result is None:
                raise RemoteResultsError(f"job {job_id} has no result ({status.name})")
            results.append(result)
        return results

    def _get_batch_status(self, batch_id: str) -> BatchStatus:
        detail = self._status(batch_id)
        statuses = {JOB_STATUS[JobState(s)] for s in detail.states}
        if detail.canceled:
            return BatchStatus.CANCELED
        if JobStatus.ERROR in statuses:
            return BatchStatus.ERROR
        if statuses and statuses <= {JobStatus.DONE, JobStatus.CANCELED} and not detail.open:
            return BatchStatus.CANCELED if statuses == {JobStatus.CANCELED} else BatchStatus.DONE
        if JobStatus.RUNNING in statuses or JobStatus.DONE in statuses:
            return BatchStatus.RUNNING
        return BatchStatus.PENDING
