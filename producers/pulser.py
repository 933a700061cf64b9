"""`QSchedConnection`: run Pulser programs through qsched with Pulser's own API.

::

    connection = QSchedConnection()     # URL and namespace from QSCHED_AMQP_URL, QSCHED_NAMESPACE
    backend = pulser.QPUBackend(seq, connection)
    results = backend.run([{"runs": 100}], wait=True)       # Pulser SampledResults
    with backend.open_batch():                                # one session: iterative loops
        backend.run([{"runs": 100, "variables": {...}}])

Each entry of ``job_params`` becomes one qsched job; a batch is a set of jobs sharing a
``batch_id`` and ``session_id`` (an open batch is one hybrid loop, which the owner's session
grace keeps together). Statuses map onto Pulser's ``JobStatus``/``BatchStatus``.
`fetch_available_devices` returns the device the owner publishes, a real Pulser ``Device``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from collections.abc import Sequence as SequenceOf
from dataclasses import dataclass, field
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

from producers.client import JobHandle, QPUClient
from producers.jobs import DEFAULT_JOB_CLASS
from schemas.enums import JobState

JOB_STATUS = {
    JobState.QUEUED: JobStatus.PENDING,
    JobState.RUNNING: JobStatus.RUNNING,
    JobState.DONE: JobStatus.DONE,
    JobState.ERROR: JobStatus.ERROR,
    JobState.REJECTED: JobStatus.ERROR,
    JobState.TIMED_OUT: JobStatus.ERROR,
    JobState.CANCELED: JobStatus.CANCELED,
}


@dataclass
class _Batch:
    atom_order: tuple[str, ...]
    basis: str
    open: bool
    handles: list[JobHandle] = field(default_factory=list)


class QSchedConnection(RemoteConnection):
    """A Pulser remote connection whose jobs go through the qsched owner.

    Args:
        client: the `QPUClient` to use; one is made from `url`, `namespace` and the settings
            when omitted (and closed by `close`).
        url: broker URL(s), ``;``-separated (defaults to the settings' ``amqp_url``).
        namespace: qsched namespace (defaults to the settings' namespace).
        job_class: class of every job sent through this connection (default ``development``).
        priority: AMQP priority (0-9, higher first) of those jobs.
        timeout_s: how long ``wait=True`` waits for a batch.
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
        self._batches: dict[str, _Batch] = {}

    def close(self) -> None:
        """Close the client this connection made (a client given to it stays open)."""
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> QSchedConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def supports_open_batch(self) -> bool:
        """qsched keeps an open batch together as one session."""
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
        """Send one job per entry of ``job_params`` (in `kwargs`) into a new or open batch."""
        job_params = kwargs.get("job_params") or []
        if batch_id is None:
            batch_id = str(uuid.uuid4())
            sequence = self._add_measurement_to_sequence(sequence)
            basis = sequence.get_measurement_basis()
            self._batches[batch_id] = _Batch(
                tuple(str(q) for q in sequence.register.qubit_ids), basis, open
            )
        batch = self._batches[batch_id]
        jobs = []
        for params in job_params:
            variables = params.get("variables") or {}
            built = sequence.build(**variables) if sequence.is_parametrized() else sequence
            runs = params.get("runs")
            if runs is None:
                raise ValueError("every job needs 'runs' (shots) to run on qsched")
            jobs.append(
                self.client.build_job(
                    built,
                    int(runs),
                    self.job_class,
                    self.priority,
                    batch_id=batch_id,
                    session_id=batch_id,
                )
            )
        new = self.client.submit_many(jobs) if jobs else []
        batch.handles.extend(new)
        if wait:
            for handle in new:
                handle.result(self.timeout_s)
        return RemoteResults(batch_id, self, [h.job_id for h in new] if new else None)

    def _close_batch(self, batch_id: str) -> None:
        self._batches[batch_id].open = False

    def _get_job_ids(self, batch_id: str) -> list[str]:
        return [h.job_id for h in self._batches[batch_id].handles]

    def _result(self, batch: _Batch, handle: JobHandle) -> Result | None:
        found = self.client.results.get(handle.job_id)
        if found is None or found.state is not JobState.DONE:
            return None
        return SampledResult(
            atom_order=batch.atom_order, meas_basis=batch.basis, bitstring_counts=dict(found.counts)
        )

    def _query_job_progress(self, batch_id: str) -> Mapping[str, tuple[JobStatus, Result | None]]:
        batch = self._batches[batch_id]
        self.client.poll(0)
        return {h.job_id: (JOB_STATUS[h.status()], self._result(batch, h)) for h in batch.handles}

    def _fetch_result(self, batch_id: str, job_ids: list[str] | None) -> SequenceOf[Result]:
        batch = self._batches[batch_id]
        wanted = [h for h in batch.handles if job_ids is None or h.job_id in job_ids]
        results = []
        for handle in wanted:
            result = self._result(batch, handle)
            if result is None:
                state = handle.status()
                raise RemoteResultsError(f"job {handle.job_id} has no result ({state.value})")
            results.append(result)
        return results

    def _get_batch_status(self, batch_id: str) -> BatchStatus:
        statuses = {status for status, _ in self._query_job_progress(batch_id).values()}
        batch = self._batches[batch_id]
        if JobStatus.ERROR in statuses:
            return BatchStatus.ERROR
        if statuses and statuses <= {JobStatus.DONE, JobStatus.CANCELED} and not batch.open:
            return BatchStatus.CANCELED if statuses == {JobStatus.CANCELED} else BatchStatus.DONE
        if JobStatus.RUNNING in statuses or JobStatus.DONE in statuses:
            return BatchStatus.RUNNING
        return BatchStatus.PENDING
