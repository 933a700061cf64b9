"""Control commands as a table: each command's pure handler and who may send it.

One `Spec` row per command says everything about it: its handler, who may send it, whether it
is logged when accepted, and whether the shell completes its answer from the log. A handler
reads the state and returns the reply text, extra fields for the ``control.<command>`` event,
and the events and effects the command causes; it raises `Refused` when the command cannot be
carried out now. `run_command` checks the sender against the row first: operators
(the policy's `operators`, or members of its `operator_group` as the shell resolved them into
`Command.operator`) may send everything; the policy's `epilog_users` (the Slurm prolog and
epilog) only the rows marked `epilog` (`allocation-started`: the allocation registry,
`consumers.core.context`; `allocation-ended`; ending sessions); a
submitter may cancel, hold, release, update and requeue its own jobs (within the limits
`consumers.core.jobctl` names), read the status and the queue (other users' jobs show without
their details, `consumers.core.privacy`), and ask for the details, result and history of its own
jobs (`show`, `result`, `history`). A job id prefix, in every command about one job, is resolved
here among the jobs the sender may see (an operator's: every job the owner knows), never by a
client scanning the log; a ``control.<command>`` event names a job only if the owner knows it.
The shell answers `result` and `history` with the records, read from memory or at known log
offsets. Every command is logged as a ``control.<command>`` event with its sender, accepted or
not: the log is the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from consumers.core import batch_commands, budgets, jobctl, reservation_commands, sessions, usage
from consumers.core.command_types import Command as Command  # where step and the shell find it
from consumers.core.command_types import Done, Handler, Refused, Who, is_operator
from consumers.core.joblookup import jobs_of, resolve_number, resolve_prefix, where_is
from consumers.core.machine import transition
from consumers.core.outcomes import (
    AnswerFromLog,
    Effect,
    Reply,
    Steps,
    StopRun,
    end_waiting,
    stopping_event,
)
from consumers.core.privacy import private_entry, private_status
from consumers.core.session_view import SessionPhases
from consumers.core.state import HOLD_COMMANDS, OwnerState
from consumers.core.view import queue_entries, running_entry, status_of
from consumers.errors import IllegalTransition
from schemas.context import Allocation
from schemas.enums import CommandName, ErrorCode, JobState, QPUState
from schemas.events import (
    CalibrationComplete,
    CalibrationEpoch,
    ControlApplied,
    JobPreempting,
    Topic,
    make_event,
)
from schemas.messages import ControlReply, Event, JobError
from schemas.policy import Policy


def _hold(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    move = HOLD_COMMANDS[given.command.command]
    try:
        after = transition(state.qpu, move, busy=state.running is not None)
    except IllegalTransition as exc:
        raise Refused(ErrorCode.INTERNAL, str(exc)) from None
    return Done(f"QPU is {after.value}")


def _mode(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    mode = given.command.mode
    assert mode is not None  # the schema requires it
    return Done(f"mode is {mode.value}", {"mode": mode, "message": given.command.message})


def _cancel(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
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


def _status(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    return Done("status")


def _queue(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
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


def _preempt(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    run = state.running
    job_id = given.command.job_id
    if run is None or run.job.job_id != job_id:
        raise Refused(ErrorCode.UNKNOWN_JOB, f"job {job_id} is not on the QPU")
    if run.preempting is not None:
        return Done(f"{job_id} is already being preempted")
    return Done(
        f"preempting {job_id}; it goes back to the backlog with its shots so far",
        events=[_preempting(state, f"preempted by operator {given.user}")],
        effects=[StopRun(run.job.job_id)],
    )


def _preempting(state: OwnerState, reason: str) -> Event:
    run = state.running
    assert run is not None
    return make_event(
        Topic.JOB_PREEMPTING,
        JobPreempting(),
        job_id=run.job.job_id,
        job_class=run.job.job_class,
        user=run.job.user,
        reason=reason,
    )


def _calibration_start(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    force = given.command.force
    if state.qpu is QPUState.CALIBRATING:
        return Done("already calibrating")
    if state.running is None:
        if state.qpu is not QPUState.IDLE:
            raise Refused(ErrorCode.INTERNAL, f"the QPU is {state.qpu.value}; resume it first")
        started = make_event(
            Topic.CALIBRATION_STARTED,
            CalibrationEpoch(epoch=state.epoch),
            reason="dispatching held for calibration",
        )
        return Done("calibrating: only calibration jobs run", events=[started])
    pending = make_event(
        Topic.CALIBRATION_PENDING,
        CalibrationEpoch(epoch=state.epoch),
        reason="calibration starts when the QPU is free",
    )
    job_id = state.running.job.job_id
    if not force:
        return Done(f"calibrating once {job_id} ends", events=[pending])
    done = Done(f"preempting {job_id}; calibrating once it is back in the backlog")
    if state.running.preempting is None:
        done.events.append(_preempting(state, "calibration starts now"))
        done.effects.append(StopRun(job_id))
    done.events.append(pending)
    return done


def _calibration_complete(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    if state.qpu is not QPUState.CALIBRATING:
        raise Refused(ErrorCode.INTERNAL, f"the QPU is {state.qpu.value}, not CALIBRATING")
    if state.running is not None:
        raise Refused(
            ErrorCode.INTERNAL, f"calibration job {state.running.job.job_id} is still running"
        )
    epoch = state.epoch + 1
    complete = make_event(
        Topic.CALIBRATION_COMPLETE,
        CalibrationComplete(epoch=epoch, device=given.command.specs),
        reason=f"epoch {epoch}",
    )
    changed = f", {given.detail}" if given.detail else ""
    return Done(f"calibration epoch {epoch}{changed}; dispatching again", events=[complete])


def _allocation_started(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
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


def _allocation_ended(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
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


def _lookup(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """`result` and `history`: where the job is now; the shell adds the records (AnswerFromLog)."""
    job_id = given.command.job_id or ""
    if state.owner_of(job_id) is None:
        raise Refused(ErrorCode.UNKNOWN_JOB, f"no job {job_id} is known to the owner")
    where = where_is(state, policy, job_id, now)
    reply: dict[str, object] = {"queue": [where.entry] if where.entry else None}
    if given.command.command is CommandName.HISTORY:
        reply["ignored"] = state.ignored_of(job_id) or None  # events the fold could not use
    return Done(where.describe(job_id), reply=reply)


def _jobs(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """The sender's jobs (an operator may name a user, or list everyone's), newest first."""
    user = given.user
    if is_operator(policy, given):
        user = given.command.user
    jobs = jobs_of(state, user, given.command.limit or DEFAULT_JOBS_LIMIT)
    return Done(f"{len(jobs)} job(s)", reply={"jobs": jobs})


def _dead_requeue(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    # the shell took the dead letter and says so (consumers.deadletters); it refused otherwise
    return Done(given.detail or "requeued")


def _reload_policy(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    fields = {"policy": given.policy} if given.policy is not None else {}
    return Done(given.detail or "policy reloaded", fields=fields)


@dataclass(frozen=True)
class Spec:
    """One command's row: its pure handler, who may send it, how it is logged and answered.

    Attributes:
        logged: whether an accepted command is logged as its ``control.<command>`` event
            (False: a read-only command; a refusal is logged all the same).
        epilog: the policy's `epilog_users` (the Slurm prolog/epilog) may send it too; they
            may send nothing else.
        about_a_job: its job id may be a prefix, resolved among the jobs the sender may see.
        from_log: answered with records the shell reads (`AnswerFromLog`), not a plain reply.
    """

    handler: Handler
    who: Who
    logged: bool = True
    epilog: bool = False
    about_a_job: bool = False
    from_log: bool = False


TABLE: dict[CommandName, Spec] = {
    CommandName.PAUSE: Spec(_hold, Who.OPERATOR),
    CommandName.RESUME: Spec(_hold, Who.OPERATOR),
    CommandName.DRAIN: Spec(_hold, Who.OPERATOR),
    CommandName.MODE: Spec(_mode, Who.OPERATOR),
    CommandName.CANCEL: Spec(_cancel, Who.JOB_OWNER, about_a_job=True),
    CommandName.STATUS: Spec(_status, Who.ANYONE, logged=False),
    CommandName.QUEUE: Spec(_queue, Who.ANYONE, logged=False, about_a_job=True),
    CommandName.PREEMPT: Spec(_preempt, Who.OPERATOR, about_a_job=True),
    CommandName.RELOAD_POLICY: Spec(_reload_policy, Who.OPERATOR),
    CommandName.CALIBRATION_START: Spec(_calibration_start, Who.OPERATOR),
    CommandName.CALIBRATION_COMPLETE: Spec(_calibration_complete, Who.OPERATOR),
    CommandName.ALLOCATION_STARTED: Spec(_allocation_started, Who.OPERATOR, epilog=True),
    CommandName.ALLOCATION_ENDED: Spec(_allocation_ended, Who.OPERATOR, epilog=True),
    CommandName.RESULT: Spec(_lookup, Who.JOB_OWNER, logged=False, about_a_job=True, from_log=True),
    CommandName.HISTORY: Spec(
        _lookup, Who.JOB_OWNER, logged=False, about_a_job=True, from_log=True
    ),
    CommandName.SHOW: Spec(jobctl.show, Who.JOB_OWNER, logged=False, about_a_job=True),
    CommandName.HOLD: Spec(jobctl.hold, Who.JOB_OWNER, about_a_job=True),
    CommandName.RELEASE: Spec(jobctl.release, Who.JOB_OWNER, about_a_job=True),
    CommandName.UPDATE: Spec(jobctl.update, Who.JOB_OWNER, about_a_job=True),
    CommandName.REQUEUE: Spec(jobctl.requeue, Who.JOB_OWNER, about_a_job=True),
    CommandName.DEAD_REQUEUE: Spec(_dead_requeue, Who.OPERATOR),
    CommandName.JOBS: Spec(_jobs, Who.ANYONE, logged=False),
    CommandName.SESSION_OPEN: Spec(sessions.open_session, Who.ANYONE),
    # the handlers check whose session it is
    CommandName.SESSION_CLOSE: Spec(sessions.close_session, Who.ANYONE, epilog=True),
    CommandName.SESSION_CANCEL: Spec(sessions.cancel_session, Who.ANYONE, epilog=True),
    CommandName.BATCH_SHOW: Spec(batch_commands.show, Who.BATCH_OWNER, logged=False),
    CommandName.BATCH_RESULTS: Spec(batch_commands.results, Who.BATCH_OWNER, logged=False),
    CommandName.BATCH_CLOSE: Spec(batch_commands.close, Who.BATCH_OWNER),
    CommandName.BATCH_CANCEL: Spec(batch_commands.cancel, Who.BATCH_OWNER),
    CommandName.BATCH_RETRY: Spec(batch_commands.retry, Who.BATCH_OWNER),
    CommandName.USAGE: Spec(usage.usage, Who.ANYONE, logged=False),  # non-operators: their own
    CommandName.BUDGET_SET: Spec(budgets.budget_set, Who.OPERATOR),
    CommandName.BUDGET_TOP_UP: Spec(budgets.budget_top_up, Who.OPERATOR),
    CommandName.BUDGET_SHOW: Spec(budgets.budget_show, Who.ANYONE, logged=False),
    CommandName.RESERVATION_CREATE: Spec(reservation_commands.create, Who.OPERATOR),
    CommandName.RESERVATION_UPDATE: Spec(reservation_commands.update, Who.OPERATOR),
    CommandName.RESERVATION_DELETE: Spec(reservation_commands.delete, Who.OPERATOR),
    CommandName.RESERVATION_LIST: Spec(reservation_commands.listing, Who.ANYONE, logged=False),
}
DEFAULT_JOBS_LIMIT = 1000
SLURM_COMMANDS = (CommandName.ALLOCATION_STARTED, CommandName.ALLOCATION_ENDED)


def authorise(state: OwnerState, policy: Policy, given: Command) -> JobError | None:
    """Why the sender may not send this command, or None."""
    user = given.user
    spec = TABLE[given.command.command]
    if is_operator(policy, given):
        return None
    if user is not None and user in policy.epilog_users:
        if spec.epilog:
            return None
        allowed = ", ".join(name.value for name, row in TABLE.items() if row.epilog)
        return JobError(
            code=ErrorCode.NOT_AUTHORISED,
            message=f"user {user!r} (Slurm prolog/epilog) may send {allowed} only",
            details={"user": user},
        )
    who = spec.who
    if who in (Who.ANYONE, Who.BATCH_OWNER):
        return None
    if who is Who.JOB_OWNER:
        owner = state.owner_of(given.command.job_id or "")
        if owner is not None and owner == user:
            return None
        if owner is None:
            return JobError(
                code=ErrorCode.UNKNOWN_JOB,
                message=f"no job {given.command.job_id} is known to the owner",
                field="job_id",
            )
    return JobError(
        code=ErrorCode.NOT_AUTHORISED,
        message=f"user {user!r} may not {given.command.command.value}: {who.value} only",
        details={"user": user},
    )


def run_command(
    state: OwnerState, policy: Policy, given: Command, now: datetime, owner_id: str, backend: str
) -> Steps:
    """Authorise and carry out one command; its event, caused events, effects and reply."""
    command = given.command
    spec = TABLE[command.command]
    error = given.problem
    if error is None and command.number is not None and not command.job_id:
        given, error = _numbered(state, policy, given)
        command = given.command
    elif error is None and spec.about_a_job and command.job_id is not None:
        given, error = _resolved(state, policy, given)
        command = given.command
    error = error or authorise(state, policy, given)
    done = Done("")
    if error is None:
        try:
            done = spec.handler(state, policy, given, now)
        except Refused as refused:
            error = refused.error
    ok = error is None
    status = None
    if ok and command.command is CommandName.STATUS:
        status = status_of(state, policy, now, owner_id, backend)
        if not is_operator(policy, given):
            status = private_status(status, given.user, state.owners)
        status = status.model_copy(update={"standbys": list(given.standbys)})
    reply = ControlReply(
        command_id=command.command_id,
        command=command.command,
        job_id=command.job_id,
        ok=ok,
        message=done.message if error is None else error.message,
        error=error,
        status=status,
        number=state.numbers.get(command.job_id) if command.job_id else None,
        **done.reply,
    )
    events: list[Event] = []
    if spec.logged or not ok:
        applied = ControlApplied(
            ok=ok, command_id=command.command_id, issued_at=command.issued_at, **done.fields
        )
        events.append(
            make_event(
                command.command,
                applied,
                # only a job the owner knows: a mistyped id must not become a "job" in the log
                job_id=command.job_id if state.owner_of(command.job_id or "") else None,
                user=given.user,
                reason=reply.message,
            )
        )
    answer: Effect = Reply(given.reply_to, reply, command.command_id)
    if ok and spec.from_log:
        job_id = command.job_id or ""
        ended = job_id in state.finished
        answer = AnswerFromLog(given.reply_to, reply, job_id, command.wait, ended)
    if ok and command.command is CommandName.BATCH_RESULTS:
        answer = batch_commands.results_effect(given, reply, state) or answer
    effects: list[Effect] = [*done.effects, answer]
    return [*events, *done.events], effects


def _numbered(state: OwnerState, policy: Policy, given: Command) -> tuple[Command, JobError | None]:
    """The command with the job of its `number` (among the jobs the sender may see) as job id."""
    found = resolve_number(state, given.command.number or 0, given.user, is_operator(policy, given))
    if isinstance(found, JobError):
        return given, found
    return replace(given, command=given.command.model_copy(update={"job_id": found})), None


def _resolved(state: OwnerState, policy: Policy, given: Command) -> tuple[Command, JobError | None]:
    """The command with its job id prefix resolved among the jobs the sender may see."""
    found = resolve_prefix(
        state, given.command.job_id or "", given.user, is_operator(policy, given)
    )
    if isinstance(found, JobError):
        return given, found
    return replace(given, command=given.command.model_copy(update={"job_id": found})), None
