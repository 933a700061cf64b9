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

The handlers live with their family: `consumers.core.job_commands` (cancel, status, queue, result,
history, jobs), `consumers.core.jobctl` (show, hold, release, update, requeue),
`consumers.core.qpu_commands` (the QPU and the owner), `consumers.core.allocation_commands` (the
Slurm prolog and epilog), `consumers.core.sessions`, `consumers.core.batch_commands`,
`consumers.core.usage`, `consumers.core.budgets` and `consumers.core.reservation_commands`; this
module is the table, the sender check and `run_command`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from consumers.core import (
    allocation_commands,
    batch_commands,
    budgets,
    job_commands,
    jobctl,
    qpu_commands,
    reservation_commands,
    sessions,
    usage,
)
from consumers.core.command_types import Command as Command  # where step and the shell find it
from consumers.core.command_types import Done, Handler, Refused, Who, is_operator
from consumers.core.joblookup import resolve_number, resolve_prefix
from consumers.core.outcomes import AnswerFromLog, Effect, Reply, Steps
from consumers.core.privacy import private_status
from consumers.core.state import OwnerState
from consumers.core.view import status_of
from schemas.control import ControlReply
from schemas.enums import CommandName, ErrorCode
from schemas.envelope import Event
from schemas.events import ControlApplied, make_event
from schemas.jobs import JobError
from schemas.policy import Policy


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
    CommandName.PAUSE: Spec(qpu_commands.hold, Who.OPERATOR),
    CommandName.RESUME: Spec(qpu_commands.hold, Who.OPERATOR),
    CommandName.DRAIN: Spec(qpu_commands.hold, Who.OPERATOR),
    CommandName.MODE: Spec(qpu_commands.mode, Who.OPERATOR),
    CommandName.CANCEL: Spec(job_commands.cancel, Who.JOB_OWNER, about_a_job=True),
    CommandName.STATUS: Spec(job_commands.status, Who.ANYONE, logged=False),
    CommandName.QUEUE: Spec(job_commands.queue, Who.ANYONE, logged=False, about_a_job=True),
    CommandName.PREEMPT: Spec(qpu_commands.preempt, Who.OPERATOR, about_a_job=True),
    CommandName.RELOAD_POLICY: Spec(qpu_commands.reload_policy, Who.OPERATOR),
    CommandName.CALIBRATION_START: Spec(qpu_commands.calibration_start, Who.OPERATOR),
    CommandName.CALIBRATION_COMPLETE: Spec(qpu_commands.calibration_complete, Who.OPERATOR),
    CommandName.ALLOCATION_STARTED: Spec(
        allocation_commands.allocation_started, Who.OPERATOR, epilog=True
    ),
    CommandName.ALLOCATION_ENDED: Spec(
        allocation_commands.allocation_ended, Who.OPERATOR, epilog=True
    ),
    CommandName.RESULT: Spec(
        job_commands.lookup, Who.JOB_OWNER, logged=False, about_a_job=True, from_log=True
    ),
    CommandName.HISTORY: Spec(
        job_commands.lookup, Who.JOB_OWNER, logged=False, about_a_job=True, from_log=True
    ),
    CommandName.SHOW: Spec(jobctl.show, Who.JOB_OWNER, logged=False, about_a_job=True),
    CommandName.HOLD: Spec(jobctl.hold, Who.JOB_OWNER, about_a_job=True),
    CommandName.RELEASE: Spec(jobctl.release, Who.JOB_OWNER, about_a_job=True),
    CommandName.UPDATE: Spec(jobctl.update, Who.JOB_OWNER, about_a_job=True),
    CommandName.REQUEUE: Spec(jobctl.requeue, Who.JOB_OWNER, about_a_job=True),
    CommandName.DEAD_REQUEUE: Spec(qpu_commands.dead_requeue, Who.OPERATOR),
    CommandName.JOBS: Spec(job_commands.jobs, Who.ANYONE, logged=False),
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
