"""What the owner knows of one job, for `result` and `history` commands (pure).

Submitters may not read the event log (it holds every user's sequences), so they ask the owner
about their own jobs. Two steps, both pure: `resolve_prefix` turns the first characters of an id
into the one id they name, among the jobs the sender may see (their own; an operator's: all), so
a prefix never reveals that another user's job exists; `where_is` says whether the job waits,
runs or ended, with its queue entry while it is not over. The records themselves (a result, the
events of a history) are read by the shell, from memory or at the offsets it learned from the log
(`consumers.owner.joblog`): never by scanning the stream.

Jobs also have numbers (1, 2, 3... in acceptance order; what the QRMI gateway shows as a job's
id): `resolve_number` finds the job of a number among the sender's, and `jobs_of` lists a user's
jobs, newest first, for the `jobs` command.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from consumers.core.state import OwnerState
from consumers.core.view import queue_entries, run_entry, running_entry
from schemas.control import JobSummary
from schemas.enums import ErrorCode, JobState
from schemas.jobs import JobError
from schemas.policy import Policy
from schemas.reports import QueueEntry
from schemas.wire import MIN_JOB_PREFIX

FULL_ID_LENGTH = 36
MIN_PREFIX = MIN_JOB_PREFIX
SHOWN_MATCHES = 3


def resolve_prefix(
    state: OwnerState, prefix: str, user: str | None, everyone: bool
) -> str | JobError:
    """The one job id starting with `prefix` that the sender may see, or why there is none.

    Args:
        state: the owner's state (`owners` knows every job it remembers).
        prefix: a full job id or at least `MIN_PREFIX` of its first characters.
        user: the sender; only their own jobs are candidates unless `everyone`.
        everyone: the sender is an operator.
    """
    if len(prefix) >= FULL_ID_LENGTH:
        return prefix  # whose it is, is `authorise`'s to say
    if len(prefix) < MIN_PREFIX:
        return JobError(
            code=ErrorCode.UNKNOWN_JOB,
            message=f"{prefix!r} is too short to name a job (give at least {MIN_PREFIX} characters)",
            field="job_id",
        )
    matches = sorted(
        job_id
        for job_id, submitter in state.owners.items()
        if job_id.startswith(prefix) and (everyone or submitter == user)
    )
    if not matches:
        whose = "" if everyone else f" of user {user!r}"
        return JobError(
            code=ErrorCode.UNKNOWN_JOB,
            message=f"no job{whose} starting with {prefix!r} is known to the owner",
            field="job_id",
        )
    if len(matches) > 1:
        shown = ", ".join(matches[:SHOWN_MATCHES])
        return JobError(
            code=ErrorCode.UNKNOWN_JOB,
            message=f"{prefix!r} matches {len(matches)} jobs ({shown}, ...); give more characters",
            field="job_id",
            details={"matches": len(matches)},
        )
    return matches[0]


@dataclass(frozen=True)
class Whereabouts:
    """Where a job is: its final state, or its queue entry while it waits or runs."""

    final: JobState | None
    entry: QueueEntry | None

    def describe(self, job_id: str) -> str:
        """One line for the reply's message."""
        if self.final is not None:
            return f"job {job_id} ended {self.final.value}"
        entry = self.entry
        if entry is None:
            return f"job {job_id} is known to the owner"
        if entry.state is JobState.RUNNING:
            return f"job {job_id} is RUNNING"
        if entry.held is not None:
            return f"job {job_id} is QUEUED, {entry.held}"
        eta = "" if entry.eta_s is None else f", starts in about {entry.eta_s:.0f} s"
        if entry.eta_unknown is not None:
            eta = f", the QPU is {entry.eta_unknown}"
        return f"job {job_id} is QUEUED, position {entry.position}{eta}"


def where_is(state: OwnerState, policy: Policy, job_id: str, now: datetime) -> Whereabouts:
    """Whether `job_id` ended (and how), or its queue entry (position, ETA, hold, RUNNING)."""
    final = state.finished.get(job_id)
    if final is not None:
        return Whereabouts(final, None)
    run = state.running
    if run is not None and run.job.job_id == job_id:
        return Whereabouts(None, running_entry(state, now))
    lane_run = state.run_of(job_id)
    if lane_run is not None:
        return Whereabouts(None, run_entry(lane_run, now))
    if job_id in state.waiting:
        entries = queue_entries(state, policy, now, job_id=job_id)
        return Whereabouts(None, entries[0] if entries else None)
    return Whereabouts(None, None)


def resolve_number(
    state: OwnerState, number: int, user: str | None, everyone: bool
) -> str | JobError:
    """The id of job `number`, if the sender may see it (their own; an operator's: any)."""
    job_id = state.job_of_number(number, None if everyone else user)
    if job_id is None:
        whose = "" if everyone else f" of user {user!r}"
        return JobError(
            code=ErrorCode.UNKNOWN_JOB,
            message=f"no job{whose} numbered {number} is known to the owner",
            field="number",
        )
    return job_id


def jobs_of(state: OwnerState, user: str | None, limit: int) -> list[JobSummary]:
    """`user`'s jobs the owner remembers (everyone's for None), newest first, at most `limit`."""
    found: list[JobSummary] = []
    runs = {r.job.job_id: r.job for r in (state.running, *state.lanes.values()) if r is not None}
    for job_id, submitter in reversed(state.owners.items()):
        if user is not None and submitter != user:
            continue
        waiting = state.waiting.get(job_id) or runs.get(job_id)
        final = state.finished.get(job_id)
        if final is not None:
            job_state = final
        elif job_id in runs:
            job_state = JobState.RUNNING
        elif waiting is not None:
            job_state = JobState.QUEUED
        else:
            continue
        found.append(
            JobSummary(
                job_id=job_id,
                number=state.numbers.get(job_id),
                state=job_state,
                session_id=waiting.session_id if waiting is not None else None,
                submitted_at=waiting.submitted_at if waiting is not None else None,
            )
        )
        if len(found) >= limit:
            break
    return found
