"""`ClientPort`: what a job's handle, the results code and waiting use of their client.

`JobHandle`, `producers.results`, `producers.batches` and `producers.futures` are given their
client (`QPUClient` passes itself) and depend only on this protocol, never on `producers.client`,
so the client can import them without an import circle. `QPUClient` satisfies it structurally.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from brokers.settings import Settings
from brokers.topology import Topology
from producers.confirms import Outgoing
from schemas.control import ControlReply
from schemas.enums import CommandName
from schemas.jobs import JobResult
from schemas.reports import QueueEntry


class SessionPort(Protocol):
    """The client's broker link, as far as the job-side code uses it (`ClientSession`)."""

    def publish(self, batch: Sequence[Outgoing], timeout_s: float = 30.0) -> dict[str, datetime]:
        """Publish `batch` with confirms; when the broker confirmed each message (by id)."""
        ...

    def credentialed_url(self) -> str:
        """The broker URL with the client's credentials (for side connections)."""
        ...


class ClientPort(Protocol):
    """A client that received results, sends commands to the owner and reads its reply queue."""

    settings: Settings
    topology: Topology
    user: str
    results: dict[str, JobResult]  # final results received, by job id

    @property
    def session(self) -> SessionPort:
        """The broker link."""
        ...

    def poll(self, timeout: float) -> None:
        """Deliver whatever has arrived, waiting up to `timeout` seconds for something."""
        ...

    def wait_result(self, job_id: str, timeout: float | None = None) -> JobResult:
        """Wait for the final result of `job_id`."""
        ...

    def control(
        self,
        command: CommandName,
        *,
        job_id: str | None = None,
        wait: bool = False,
        batch_id: str | None = None,
        timeout: float = 10.0,
    ) -> ControlReply:
        """Send a command to the owner and wait for its reply."""
        ...

    def queue(self, *, job_id: str | None = None, timeout: float = 10.0) -> list[QueueEntry]:
        """The owner's backlog (here: one job's entry)."""
        ...
