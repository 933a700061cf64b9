"""The inputs of `step`: everything that can happen to the owner, as plain values."""

from __future__ import annotations

from dataclasses import dataclass, field

from consumers.core.batches import BatchArrival as BatchArrival  # an input like the others
from consumers.core.commands import Command
from schemas.context import VerifiedContext
from schemas.jobs import JobError, JobRequest
from schemas.wire import IdSource


@dataclass(frozen=True)
class Context:
    """Facts about the shell that events and replies mention, and where event ids come from.

    Attributes:
        ids: the id of each event `step` returns (the owner's: random, `schemas.messages.new_id`;
            a simulation's: drawn from its seed, `schemas.messages.seeded_ids`).
    """

    owner_id: str
    backend: str
    ids: IdSource


@dataclass(frozen=True)
class Arrival:
    """A decoded job delivery, with the shell's verdict on its sequence (`problem`) and the site
    plugins' answers: an admission hold and the ordering term (`consumers.plugins`).

    `waited_s` is how long the shell has kept the delivery waiting for its Slurm allocation's
    registration (a monotonic duration), `may_wait` whether it has room to keep it longer.
    `verified` is set only by `qsched simulate`, for an arrival the log recorded with the
    context the owner verified then; the owner's shell never sets it.
    """

    job: JobRequest
    user: str
    reply_to: str | None = None
    trace: dict[str, str] = field(default_factory=dict)
    problem: JobError | None = None
    hold: str | None = None
    site_term: float | None = None
    waited_s: float = 0.0
    may_wait: bool = True
    verified: VerifiedContext | None = None


@dataclass(frozen=True)
class Progress:
    """The backend measured more shots of the running job (counts of this run so far)."""

    job_id: str
    counts: dict[str, int]


@dataclass(frozen=True)
class Finished:
    """The backend's run ended: completed, failed (`error`) or stopped (`canceled`)."""

    job_id: str
    counts: dict[str, int] = field(default_factory=dict)
    error: JobError | None = None
    canceled: bool = False


@dataclass(frozen=True)
class Operational:
    """The backend went down or came back."""

    up: bool
    reason: str


@dataclass(frozen=True)
class Note:
    """Something an operator should know about a job (e.g. a refused cancel)."""

    job_id: str
    message: str


@dataclass(frozen=True)
class Tick:
    """Time passed: deadlines, queue ages and run-time limits are checked."""


@dataclass(frozen=True)
class Dispatch:
    """The QPU may have something to do: decide.

    Attributes:
        checked: the job whose sequence the shell just re-checked against the current device,
            as the core asked (`Recheck`): it may start though checked at an older epoch.
        specs: the digest of the device specs a run would start under (stamped on the run and
            its result, as a lane's are); None where the caller has no device (tests, tools).
    """

    checked: str | None = None
    specs: str | None = None


@dataclass(frozen=True)
class Invalidated:
    """A waiting job's sequence no longer fits the device after a calibration (the shell's
    answer to a `Recheck` that failed)."""

    job_id: str
    problem: JobError


@dataclass(frozen=True)
class Readmitted:
    """The admission plugins' new answer on a held job: still `hold`, let go, or `refusal`."""

    job_id: str
    hold: str | None = None
    refusal: JobError | None = None


@dataclass(frozen=True)
class LaneDispatch:
    """Emulator lane `lane` is free: start the best job that may run there, under the
    current device specs (`specs`, their digest, stamped on the run)."""

    lane: str
    specs: str
    checked: str | None = None  # as `Dispatch.checked`


@dataclass(frozen=True)
class Recovered:
    """This owner just rebuilt the state: a run left by a dead owner waits again."""


Input = (
    Arrival
    | BatchArrival
    | Progress
    | Finished
    | Operational
    | Note
    | Tick
    | Dispatch
    | Invalidated
    | Readmitted
    | LaneDispatch
    | Recovered
    | Command
)
