"""What the owner tells about one job (`qsched show`) and about its standbys (`qsched status`).

Parts of `ControlReply` and `StatusReport` (in `schemas.messages`), apart so that module stays
about the wire messages themselves.
"""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.enums import JobState


class StandbyOwner(BaseModel):
    """An owner waiting for the lease, as its last heartbeat described it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    owner_id: str
    host: str
    pid: int | None = None
    backend: str | None = None
    last_heartbeat: AwareDatetime


class JobDetail(BaseModel):
    """Everything the owner knows of one waiting or running job, as `qsched show` prints it.

    Attributes:
        hold_by: who put a user or operator hold on the job (`hold_kind` says which).
        held: why the job may not start now (a hold, the mode, calibration...), or None.
        shots_done: shots measured so far (earlier runs included).
        attempt: the run it is on (running) or will be on next (waiting).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str
    state: JobState
    job_class: str
    user: str
    account: str | None = None
    priority: int
    shots: int
    shots_done: int = 0
    submitted_at: AwareDatetime
    accepted_at: AwareDatetime | None = None
    started_at: AwareDatetime | None = None
    position: int | None = None
    eta_s: float | None = None
    held: str | None = None
    hold_by: str | None = None
    hold_kind: str | None = None
    attempt: int = 1
    preemptions: int = 0
    session_id: str | None = None
    allocation: str | None = None
    deadline: AwareDatetime | None = None
    trace_id: str | None = None
    factors: dict[str, Any] = Field(default_factory=dict)


class BatchDetail(BaseModel):
    """What the owner knows of one batch (`qsched batch show`, `client.batch(ID)`).

    Attributes:
        states: each job's state, in the order the jobs were added.
        counts: jobs by state.
        atom_order: the register's atom ids in order (a result's bitstring order).
        basis: the measurement basis (`pulser.result.SampledResult`'s ``meas_basis``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_id: str
    user: str
    job_class: str
    open: bool
    canceled: bool = False
    digest: str
    variables: dict[str, tuple[str, int]] = Field(default_factory=dict)
    created_at: AwareDatetime
    job_ids: list[str] = Field(default_factory=list)
    states: list[str] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)
    atom_order: list[str] = Field(default_factory=list)
    basis: str | None = None
