"""The Slurm prolog's and epilog's commands (pure handlers of `consumers.core.commands`'s table):
``allocation-started`` registers an allocation (the registry is `consumers.core.context`),
``allocation-ended`` cancels its waiting jobs, ends its sessions and stops its running job.
"""

from __future__ import annotations

from datetime import datetime

from consumers.core import sessions
from consumers.core.command_types import Command, Done, Refused
from consumers.core.outcomes import StopRun, end_waiting, stopping_event
from consumers.core.state import OwnerState
from schemas.context import Allocation
from schemas.enums import ErrorCode, JobState
from schemas.jobs import JobError
from schemas.policy import Policy


def allocation_started(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """``allocation-started``: the allocation is registered (the fold records it)."""
    command = given.command
    try:
        allocation = Allocation(
            id=command.allocation or "",
            user=command.user or "",
            uid=command.uid,
            account=command.account,
            end=command.end,
            partition=command.partition,
        )
    except ValueError as exc:
        raise Refused(ErrorCode.INVALID_SCHEMA, f"allocation-started: {exc}") from None
    account = f"account {allocation.account}" if allocation.account else "no account"
    end = f"ends {allocation.end.isoformat()}" if allocation.end else "no time limit"
    before = state.allocations.get(allocation.id)
    verb = "registered again" if before is not None else "registered"
    ended = " (it has already ended)" if allocation.id in state.ended_allocations else ""
    return Done(
        f"allocation {allocation.id} of {allocation.user} {verb}: {account}, {end}{ended}",
        {"allocation": allocation.id, "registered": allocation},
    )


def allocation_ended(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """``allocation-started``: the allocation is registered (the fold records it)."""
    allocation = given.command.allocation or ""
    error = JobError(
        code=ErrorCode.ALLOCATION_ENDED, message=f"Slurm allocation {allocation} ended"
    )
    done = Done("")
    for job in list(state.waiting.values()):
        if job.allocation == allocation:
            events, effects = end_waiting(job, JobState.CANCELED, error, now)
            done.events += events
            done.effects += effects
    canceled = len(done.events)
    done.events += sessions.allocation_ended(state, allocation)
    stopped = ""
    run = state.running
    if run is not None and run.job.allocation == allocation and run.stop_error is None:
        done.events.append(stopping_event(run.job, error, JobState.CANCELED))
        done.effects.append(StopRun(run.job.job_id))
        stopped = f", stopping {run.job.job_id}"
    done.message = f"allocation {allocation} ended: {canceled} queued job(s) canceled{stopped}"
    done.fields = {"allocation": allocation, "canceled": canceled}
    return done
