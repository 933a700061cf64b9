"""What the owner verified about a job's origin, and the allocation registry's records.

Facts come from where they are true (DESIGN section 8). A job's Slurm allocation, its account and
the allocation's end are looked up in the owner's allocation registry, which the Slurm prolog (or
an operator) feeds with ``allocation-started`` and the epilog with ``allocation-ended``; a job
outside any allocation gets its account from the policy's ``[accounts] default`` mapping. What a
client puts in `JobRequest.slurm` is only a hint: the owner writes what it verified into the
``job.accepted`` event (`VerifiedContext`), and everything downstream (fair share, admission
plugins, allocation end checks, allocation-ended, sessions, usage) reads that and nothing else.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from schemas.jobs import SlurmContext


class Allocation(BaseModel):
    """One Slurm allocation as Slurm (the prolog, as SlurmUser) or an operator registered it.

    Attributes:
        id: the Slurm job id of the allocation.
        user: the unix (and broker) user it belongs to.
        uid: that user's uid, when the prolog gave it.
        account: its Slurm account (None: the site runs without accounts).
        end: when Slurm ends it (None: no time limit).
        partition: its Slurm partition.
        started_at: when the registration reached the owner's log.
        ended: the epilog said it ended.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=128)
    user: str = Field(min_length=1, max_length=256)
    uid: int | None = Field(default=None, ge=0)
    account: str | None = Field(default=None, max_length=256)
    end: AwareDatetime | None = None
    partition: str | None = Field(default=None, max_length=256)
    started_at: AwareDatetime | None = None
    ended: bool = False


class ContextSource(StrEnum):
    """Where a job's verified account came from."""

    ALLOCATION = "allocation"  # the registry: the allocation the job named is its user's
    DEFAULT = "default"  # outside any allocation: the policy's [accounts] default mapping
    NONE = "none"  # outside any allocation, and no default account for its user
    ENDED = "ended"  # it named an allocation that had already ended (it is canceled at once)
    CLAIMED = "claimed"  # a log written before the owner verified contexts: the client's word


class VerifiedContext(BaseModel):
    """What the owner verified about a job at acceptance (written into ``job.accepted``).

    Attributes:
        allocation: the registered allocation of the job's user it runs in (None: outside one).
        account: the account QPU time is charged to and fair share counts.
        allocation_end: when that allocation ends, as Slurm said.
        source: where the account came from.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    allocation: str | None = None
    account: str | None = None
    allocation_end: AwareDatetime | None = None
    partition: str | None = None
    source: ContextSource = ContextSource.NONE

    @classmethod
    def claimed(cls, slurm: SlurmContext | None) -> VerifiedContext:
        """The context a job accepted before the owner verified contexts was scheduled with:
        its client's claim (such ``job.accepted`` events carry no `verified`; replaying them
        keeps the decisions they led to)."""
        if slurm is None:
            return cls(source=ContextSource.CLAIMED)
        return cls(
            allocation=slurm.job_id,
            account=slurm.account,
            allocation_end=slurm.allocation_end,
            source=ContextSource.CLAIMED,
        )
