"""Submitting from MPI ranks, in two modes.

``rank`` mode: every rank opens its own `QPUClient` (simple; one AMQP connection per rank).
``node`` mode: the ranks of one node hand their jobs to the node's local rank 0 over MPI, which
publishes them with one connection (`QPUClient.submit_many`), waits for the results and scatters
each rank's own results back; 10,000 ranks on 100 nodes then open 100 connections, not 10,000.
Both are collective over the communicator given: every rank calls `MPISubmitter.run` together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from producers.client import QPUClient
from producers.jobs import DEFAULT_JOB_CLASS
from schemas.jobs import JobRequest, JobResult

Mode = Literal["rank", "node"]


@dataclass(frozen=True)
class JobSpec:
    """What a rank wants run: a sequence (Pulser object or abstract-repr JSON) and its shots."""

    sequence: Any
    shots: int
    job_class: str = DEFAULT_JOB_CLASS
    priority: int = 0
    session_id: str | None = None


class MPISubmitter:
    """Submit each rank's jobs and give each rank its own results.

    Args:
        comm: an mpi4py communicator (e.g. ``MPI.COMM_WORLD``).
        mode: ``rank`` (a client per rank) or ``node`` (one publisher per node).
        client_factory: makes the `QPUClient` (defaults to one from the settings).
    """

    def __init__(self, comm: Any, mode: Mode = "node", client_factory: Any = QPUClient) -> None:
        from mpi4py import MPI

        self.mode = mode
        self.comm = comm
        self.node: Any = comm.Split_type(MPI.COMM_TYPE_SHARED) if mode == "node" else None
        publishes = self.node is None or self.node.Get_rank() == 0
        self.client: QPUClient | None = client_factory() if publishes else None

    @property
    def connections_on_node(self) -> int:
        """How many broker connections the ranks of this node hold."""
        if self.node is None:
            return int(self.comm.allreduce(1))
        return int(self.node.allreduce(1 if self.client is not None else 0))

    def run(self, jobs: Sequence[JobSpec], timeout_s: float | None = None) -> list[JobResult]:
        """Submit this rank's `jobs` and return their results, in the same order (collective)."""
        if self.mode == "rank":
            assert self.client is not None
            mine = [self._build(self.client, j) for j in jobs]
            return [h.result(timeout_s) for h in self.client.submit_many(mine)]
        assert self.node is not None
        texts = [
            (j.sequence if isinstance(j.sequence, str) else j.sequence.to_abstract_repr(), j)
            for j in jobs
        ]
        gathered = self.node.gather(
            [JobSpec(text, j.shots, j.job_class, j.priority, j.session_id) for text, j in texts],
            root=0,
        )
        per_rank: list[list[JobResult]] | None = None
        if self.client is not None:
            assert gathered is not None
            built: list[list[JobRequest]] = [
                [self._build(self.client, j) for j in rank_jobs] for rank_jobs in gathered
            ]
            handles = self.client.submit_many([job for rank_jobs in built for job in rank_jobs])
            results = iter([h.result(timeout_s) for h in handles])
            per_rank = [[next(results) for _ in rank_jobs] for rank_jobs in built]
        return list(self.node.scatter(per_rank, root=0))

    @staticmethod
    def _build(client: QPUClient, spec: JobSpec) -> JobRequest:
        return client.build_job(
            spec.sequence, spec.shots, spec.job_class, spec.priority, session_id=spec.session_id
        )

    def close(self) -> None:
        """Close this rank's connection, if it has one."""
        if self.client is not None:
            self.client.close()
