"""The backend port: what the owner asks of a QPU, whatever it is.

A backend runs one job at a time off the owner's I/O thread and reports through the
`RunReports` it is given (progress and exactly one `finished` per started run), from whatever
thread it likes; the owner's implementation hands the calls over to its own thread. Cancel is asynchronous: the run's `finished` comes
with ``canceled=True`` and the counts measured so far.
"""

from __future__ import annotations

import functools
import json
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from schemas.enums import ErrorCode
from schemas.jobs import JobError

if TYPE_CHECKING:
    from pulser.devices._device_datacls import BaseDevice


@dataclass(frozen=True)
class RunRequest:
    """One run of a job on the backend."""

    job_id: str
    sequence: str
    shots: int
    attempt: int = 1
    variables: dict[str, Any] | None = None  # a batch job: `sequence` is built with these


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended: counts measured, and an error unless it completed or was canceled."""

    job_id: str
    counts: dict[str, int] = field(default_factory=dict)
    error: JobError | None = None
    canceled: bool = False

    @property
    def shots_done(self) -> int:
        """Shots measured (the sum of the counts)."""
        return sum(self.counts.values())


class RunReports(Protocol):
    """Where a backend reports a run (given to `Backend.start`); implementations must be
    thread-safe."""

    def progress(self, job_id: str, shots_done: int, counts: dict[str, int]) -> None:
        """Counts measured so far (cumulative)."""

    def finished(self, outcome: RunOutcome) -> None:
        """The run is over; called exactly once per `Backend.start`."""

    def operational(self, up: bool, reason: str) -> None:
        """The QPU went down (the run waits) or came back."""

    def note(self, job_id: str, message: str) -> None:
        """Something an operator should know about the run (e.g. a refused cancel)."""


class Backend(ABC):
    """A QPU the owner can drive."""

    name: str = "backend"
    device_taken_at: datetime | None = None  # set by `device` when it first loads the specs

    @abstractmethod
    def device(self) -> BaseDevice:
        """The device specs jobs are validated against."""

    def calibrated_at(self) -> datetime | None:
        """When the device's current calibration was made, as far as this backend knows: by
        default when it took the device specs jobs are validated against (a backend whose QPU
        reports its calibration time overrides this). Until an operator's calibration is in
        the log, the owner's calibration metrics count from here."""
        return self.device_taken_at

    @abstractmethod
    def fetch_operational(self) -> bool:
        """Whether the QPU can take jobs now."""

    @abstractmethod
    def start(self, request: RunRequest, reports: RunReports) -> None:
        """Start a run without blocking; report through `reports`."""

    @abstractmethod
    def cancel(self, job_id: str) -> None:
        """Stop the run of `job_id` if it is running; its `finished` reports canceled."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release processes, threads and connections."""


class LocalBackend(Backend):
    """A backend on this machine: always operational; its device is given or AnalogDevice."""

    _device: BaseDevice | None = None

    def device(self) -> BaseDevice:
        """The configured device, else Pulser's AnalogDevice."""
        if self._device is None:
            self._device = load_default_device(None)
        if self.device_taken_at is None:
            self.device_taken_at = datetime.now(UTC)
        return self._device

    def fetch_operational(self) -> bool:
        """Nothing here goes down on its own."""
        return True


def accumulate(total: Counter[str], chunk: dict[str, int]) -> dict[str, int]:
    """Add a chunk's counts to a running total and return a plain copy of the total."""
    total.update(chunk)
    return dict(total)


def register_size(sequence_json: str) -> int:
    """Number of atoms in an abstract-repr sequence, without importing Pulser."""
    try:
        register = json.loads(sequence_json).get("register", [])
    except (ValueError, AttributeError):
        return 1
    return max(len(register), 1) if isinstance(register, list) else 1


@functools.lru_cache(maxsize=64)
def _parametrized(sequence_json: str) -> Any:
    from pulser import Sequence

    return Sequence.from_abstract_repr(sequence_json)


def concrete_sequence(request: RunRequest) -> str:
    """The sequence a run executes: a batch job's sequence built with its variables (the
    batch's parametrized sequence is read once per batch, then built per job).

    Raises:
        InvalidSequence: the variables do not build (e.g. a value over a channel's limit).
    """
    if not request.variables:
        return request.sequence
    try:
        built = _parametrized(request.sequence).build(**request.variables)
        return str(built.to_abstract_repr(skip_validation=True))
    except Exception as exc:  # pulser raises ValueError, TypeError, RuntimeError...
        raise InvalidSequence(f"the sequence does not build with these variables: {exc}") from exc


class InvalidSequence(Exception):
    """A batch job's variables do not build its sequence; the run fails, not retryably."""

    def error(self) -> JobError:
        """The job's error."""
        return JobError(code=ErrorCode.INVALID_SEQUENCE, message=str(self)[:500], field="variables")


def load_default_device(device_file: Path | None) -> BaseDevice:
    """The device from a Pulser device JSON file, or Pulser's AnalogDevice."""
    if device_file is not None:
        from schemas.sequence import load_device

        return load_device(Path(device_file).read_text(encoding="utf-8"))
    from pulser.devices import AnalogDevice

    return AnalogDevice
