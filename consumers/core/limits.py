"""Backlog limits (pure): whether more waiting jobs would break a class's, a user's or the
whole backlog's limit. Shared by single jobs (`consumers.core.admission`) and batches, which are
refused whole (`consumers.core.batches`)."""

from __future__ import annotations

from consumers.core.state import OwnerState
from schemas.enums import ErrorCode
from schemas.jobs import JobError
from schemas.policy import Policy


def over_limit(
    state: OwnerState, policy: Policy, job_class: str, user: str, adding: int = 1
) -> JobError | None:
    """The backlog limit `adding` new jobs would break, named, or None."""
    index = state.index
    limits = (
        (policy.classes[job_class].max_waiting, index.per_class[job_class], f"class {job_class}"),
        (policy.max_waiting_per_user, index.per_user[user], f"user {user}"),
        (policy.max_waiting_total, len(state.waiting), "the whole backlog"),
    )
    for limit, waiting, what in limits:
        if limit is not None and waiting + adding > limit:
            more = f" (adding {adding})" if adding > 1 else ""
            return JobError(
                code=ErrorCode.BACKLOG_LIMIT,
                message=f"backlog limit of {what} reached: {waiting} of {limit} jobs waiting{more}",
                retryable=True,
                details={"limit": limit, "waiting": waiting, "scope": what, "adding": adding},
            )
    return None
