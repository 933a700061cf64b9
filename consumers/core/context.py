"""A job's verified context (pure): its allocation, account and allocation end, from the
owner's allocation registry and the policy, never from what the client says.

`verify` answers, for a job and its broker-verified user, one of:

- a `VerifiedContext`: the job names an allocation the registry has for that user (its account
  and end are the registry's), or names none but names an open session of that user which has
  a (verified) allocation, whose allocation it then is (the QRMI gateway's jobs: QRMI names the
  session, the session names the allocation), or names neither (its account is the policy's
  ``[accounts] default`` for the user, or none);
- `Unregistered`: it names an allocation the registry does not know yet. The shell keeps the
  delivery (unacked) for up to ``[accounts] registration_grace_s`` and steps it again when the
  allocation is registered; after that it is refused, naming the allocation;
- a `JobError`: refused at once (an allocation of another user, or none where the policy
  requires one).

What the client claimed (`JobRequest.slurm`) only matters to `mismatch`, which names the fields
that differ so the owner logs a ``job.context_mismatch``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from consumers.core.state_data import StateData
from schemas.context import Allocation, ContextSource, VerifiedContext
from schemas.enums import ErrorCode
from schemas.jobs import JobError, JobRequest
from schemas.policy import Policy

KEEP_ENDED_S = 86_400.0  # an ended or long-past allocation is forgotten this long after


@dataclass(frozen=True)
class Unregistered:
    """The job names an allocation the registry does not know (yet)."""

    allocation: str


def verify(
    state: StateData, policy: Policy, job: JobRequest, user: str
) -> VerifiedContext | Unregistered | JobError:
    """What the owner believes about where `job` (sent by `user`) comes from."""
    claimed = job.slurm.job_id if job.slurm is not None else None
    if claimed is None:
        claimed = session_allocation(state, job.session_id, user)
    accounts = policy.accounts
    if claimed is None:
        if accounts.require_allocation:
            return JobError(
                code=ErrorCode.ALLOCATION_REQUIRED,
                message="this site runs QPU jobs from Slurm allocations only; submit from "
                "inside one (sbatch/salloc/srun)",
                field="slurm",
            )
        return outside_allocation(policy, user)
    return of_allocation(state, policy, claimed, user)


def session_allocation(state: StateData, session_id: str | None, user: str) -> str | None:
    """The allocation of `user`'s open session `session_id` (None: no such session of hers, or
    it names none). `sessions.open_session` verified it against the registry when it opened."""
    session = state.sessions.get(session_id or "")
    if session is None or not session.is_open or session.user != user:
        return None
    return session.allocation


def of_allocation(
    state: StateData, policy: Policy, claimed: str, user: str
) -> VerifiedContext | Unregistered | JobError:
    """The context of allocation `claimed`, as `user` claims it, from the registry."""
    accounts = policy.accounts
    registered = state.allocations.get(claimed)
    if registered is None:
        if claimed in state.ended_allocations:  # ended before (or without) its registration
            return VerifiedContext(allocation=claimed, source=ContextSource.ENDED)
        return Unregistered(claimed)
    if registered.user != user:
        return JobError(
            code=ErrorCode.NOT_YOUR_ALLOCATION,
            message=f"the job claims Slurm allocation {claimed}, which Slurm registered for "
            f"another user, not {user}",
            field="slurm.job_id",
            details={"allocation": claimed, "user": user},
        )
    return VerifiedContext(
        allocation=registered.id,
        account=registered.account or accounts.default_account(user),
        allocation_end=registered.end,
        partition=registered.partition,
        source=ContextSource.ENDED if registered.ended else ContextSource.ALLOCATION,
    )


def outside_allocation(policy: Policy, user: str) -> VerifiedContext:
    """The context of a job of `user` from no allocation: the site's default account."""
    account = policy.accounts.default_account(user)
    source = ContextSource.DEFAULT if account is not None else ContextSource.NONE
    return VerifiedContext(account=account, source=source)


def unregistered_error(allocation: str, waited_s: float) -> JobError:
    """The refusal of a job whose allocation was never registered."""
    return JobError(
        code=ErrorCode.UNKNOWN_ALLOCATION,
        message=f"Slurm allocation {allocation} is not registered with the QPU owner (no "
        f"allocation-started from its prolog within {waited_s:.0f} s); submit from inside "
        "your allocation, or ask the site to install the qsched prolog",
        field="slurm.job_id",
        retryable=True,
        details={"allocation": allocation},
    )


def mismatch(job: JobRequest, verified: VerifiedContext) -> tuple[str, ...]:
    """The fields of the client's Slurm context that differ from what was verified."""
    slurm = job.slurm
    if slurm is None:
        return ()
    differs: list[str] = []
    if slurm.job_id != verified.allocation:
        differs.append("job_id")
    if slurm.account is not None and slurm.account != verified.account:
        differs.append("account")
    claimed_end = slurm.allocation_end
    if claimed_end is not None and (
        verified.allocation_end is None
        or abs((claimed_end - verified.allocation_end).total_seconds()) >= 1.0
    ):
        differs.append("allocation_end")
    return tuple(differs)


def registration(given: Allocation, at: datetime) -> Allocation:
    """The registry's record of an ``allocation-started`` applied at `at`."""
    return given.model_copy(update={"started_at": at, "ended": False})


def forgettable(allocations: dict[str, Allocation], at: datetime) -> list[str]:
    """Allocations the registry may forget at `at`: ended, or past their end, a day ago."""
    horizon = at - timedelta(seconds=KEEP_ENDED_S)
    return [
        key
        for key, known in allocations.items()
        if (known.end is not None and known.end < horizon)
        or (known.ended and known.started_at is not None and known.started_at < horizon)
    ]
