"""The commands about jobs that are not job control (pure handlers of `consumers.core.commands`'s
table): ``cancel``, ``status``, ``queue``, ``result``/``history`` (where the job is; the shell
adds the records) and ``jobs``. Holding, releasing, updating, requeuing and showing one job are
`consumers.core.jobctl`.
"""

from __future__ import annotations

from datetime import datetime

from consumers.core.command_types import Command, Done, Refused, is_operator
from consumers.core.joblookup import jobs_of, where_is
from consumers.core.outcomes import StopRun, end_waiting, stopping_event
from consumers.core.privacy import private_entry
from consumers.core.session_view import SessionPhases
from consumers.core.state import OwnerState
from consumers.core.view import queue_entries, running_entry
from schemas.enums import CommandName, ErrorCode, JobState
from schemas.jobs import JobError
from schemas.policy import Policy

DEFAULT_JOBS_LIMIT = 1000


def cancel(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """``cancel``: a waiting job ends CANCELED; a running one is stopped."""
    job_id = given.command.job_id or ""
    by_operator = is_operator(policy, given)
    code = ErrorCode.CANCELED_BY_OPERATOR if by_operator else ErrorCode.CANCELED_BY_USER
    error = JobError(code=code, message=f"job {job_id} canceled by {given.user}")
    if job_id in state.finished:
        return Done(f"job {job_id} already ended {state.finished[job_id].value}")
    waiting = state.waiting.get(job_id)
    if waiting is not None:
        events, effects = end_waiting(waiting, JobState.CANCELED, error, now)
        return Done(f"canceled queued job {job_id}", events=events, effects=effects)
    run = state.run_of(job_id)  # on the QPU or on an emulator lane
    if run is not None:
        return Done(
            f"canceling running job {job_id}",
            events=[stopping_event(run.job, error, JobState.CANCELED)],
            effects=[StopRun(job_id)],
        )
    raise Refused(ErrorCode.UNKNOWN_JOB, f"no job {job_id} is known to the owner")


def status(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """``cancel``: a waiting job ends CANCELED; a running one is stopped."""
    return Done("status")


def queue(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """``status``: `run_command` adds the owner's status."""
    command = given.command
    entries = queue_entries(
        state,
        policy,
        now,
        user=command.user,
        job_class=command.job_class,
        job_id=command.job_id,
        limit=command.limit,
    )
    running = running_entry(state, now, SessionPhases(state, policy, now))
    if running is not None and (command.job_id in (None, running.job_id)):
        entries.insert(0, running)
    if command.job_id is not None and not entries:
        ended = state.finished.get(command.job_id)
        how = f": it ended {ended.value}" if ended is not None else ""
        raise Refused(
            ErrorCode.NOT_WAITING, f"job {command.job_id} is not waiting nor running{how}"
        )
    if command.limit is not None:
        entries = entries[: command.limit]
    if not is_operator(policy, given):
        entries = [private_entry(entry, given.user) for entry in entries]
    return Done(f"{len(entries)} job(s)", reply={"queue": entries})


def lookup(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """`result` and `history`: where the job is now; the shell adds the records (AnswerFromLog)."""
    job_id = given.command.job_id or ""
    if state.owner_of(job_id) is None:
        raise Refused(ErrorCode.UNKNOWN_JOB, f"no job {job_id} is known to the owner")
    where = where_is(state, policy, job_id, now)
    reply: dict[str, object] = {"queue": [where.entry] if where.entry else None}
    if given.command.command is CommandName.HISTORY:
        reply["ignored"] = state.ignored_of(job_id) or None  # events the fold could not use
    return Done(where.describe(job_id), reply=reply)


def jobs(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """The sender's jobs (an operator may name a user, or list everyone's), newest first."""
    user = given.user
    if is_operator(policy, given):
        user = given.command.user
    jobs = jobs_of(state, user, given.command.limit or DEFAULT_JOBS_LIMIT)
    return Done(f"{len(jobs)} job(s)", reply={"jobs": jobs})
