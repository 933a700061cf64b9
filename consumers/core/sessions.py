"""Sessions (pure): opening, closing and canceling one, what a job naming one may do, and what
ends one with time or with its allocation.

Theory of operation. A session is one notion for QRMI's acquire/release, the SDK's sessions and
Pulser's open batches: it belongs to a user (and the Slurm allocation it names, verified against the owner's allocation
registry when it opens: unknown, ended or another user's is refused; a job of it that names no
allocation of its own is the allocation's: `consumers.core.context.verify`), has a maximum
length and an idle timeout (the policy's defaults, capped by the policy), and ends by
``session-close`` (no new jobs; its waiting and running jobs finish), ``session-cancel`` (its
waiting jobs are canceled too), its time running out, being idle (no job waiting or running of
it for its idle timeout), or its allocation ending. It is opened explicitly by ``session-open``
or implicitly by the first job naming an unknown session id (owner: that job's user and
allocation). While it is open, the next job of its user goes first in its class for a short
grace after each run (`consumers.core.policy`); a class with ``exclusive_sessions_s`` holds the
QPU that long at most for the session's next job (`exclusive_hold`, asked by the dispatcher).

A job naming a session: an explicit session of another user, or an ended explicit one, refuses
it (nothing is created); an unknown id, or an ended implicit session, opens one for the job,
unless the job says it must not (`JobRequest.opens_session`: the QRMI gateway's jobs). A job
naming an open implicit session that is not its own (another user's, or another allocation's)
is accepted outside it, logged with a ``job.context_mismatch`` (`stranger`): session ids are
global, so copying one buys nothing.

Grace is bounded: a session has it for ``session_grace_s`` after each of its runs, and only
while its turn stays within ``session_max_consecutive`` runs and ``session_turn_max_qpu_s`` QPU
seconds. A turn begins with a run that won the QPU without grace and goes on with each run that
started in grace (`JobStarted.in_grace`); past a bound, the session's next job waits by fair
share, priority and age like any other, and its turn begins again only when it wins that way.
"""

from __future__ import annotations

from datetime import datetime

from consumers.core.command_types import Command, Done, Refused, is_operator
from consumers.core.context import Unregistered, of_allocation
from consumers.core.order import Waiting
from consumers.core.outcomes import end_waiting
from consumers.core.session_fold import belongs
from consumers.core.state import OwnerState
from consumers.core.state_data import GraceBounds, Session
from schemas.context import VerifiedContext
from schemas.enums import ErrorCode, JobState
from schemas.envelope import Event
from schemas.events import ContextMismatch, SessionEnded, SessionOpened, Topic, make_event
from schemas.jobs import JobError, JobRequest
from schemas.policy import Policy

CLOSED, CANCELED, MAX_TIME, IDLE, ALLOCATION_ENDED = (
    "closed",
    "canceled",
    "max_time",
    "idle",
    "allocation_ended",
)
ENDED_REASONS = (CLOSED, CANCELED, MAX_TIME, IDLE, ALLOCATION_ENDED)


def limits(policy: Policy, max_time_s: float | None, idle_s: float | None) -> tuple[float, float]:
    """A session's length and idle timeout: what it asked for (else the policy's), capped."""
    rules = policy.sessions
    return (
        min(max_time_s or rules.max_time_s, rules.max_time_cap_s),
        min(idle_s or rules.idle_timeout_s, rules.idle_timeout_cap_s),
    )


def exclusive_of(policy: Policy, job_class: str | None) -> float | None:
    """How long the QPU waits for a session's next job in `job_class` (None: never)."""
    found = policy.classes.get(job_class or "")
    return found.exclusive_sessions_s if found is not None else None


def opened_event(session: SessionOpened) -> Event:
    """The ``session.opened`` event."""
    kind = "opened" if session.explicit else "opened by its first job"
    return make_event(Topic.SESSION_OPENED, session, user=session.user, reason=f"session {kind}")


def ended_event(session: Session, reason: str, canceled: int = 0) -> Event:
    """The ``session.ended`` event."""
    return make_event(
        Topic.SESSION_ENDED,
        SessionEnded(session_id=session.session_id, reason=reason, canceled=canceled),
        user=session.user,
        reason=f"session {session.session_id} ended: {reason}",
    )


# ---- commands ----------------------------------------------------------------------------------


def open_session(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """``session-open``: a session of the sender (and the allocation it names)."""
    command = given.command
    user = given.user or ""
    session_id = command.session_id or command.command_id
    known = state.sessions.get(session_id)
    if known is not None:
        if known.user == user and known.is_open:
            return Done(f"session {session_id} is open")
        raise Refused(ErrorCode.INVALID_SCHEMA, f"session id {session_id} is taken")
    allocation = command.allocation
    account = _verified_account(state, policy, allocation, user)
    max_time_s, idle_s = limits(policy, command.max_time_s, command.idle_timeout_s)
    opened = SessionOpened(
        session_id=session_id,
        user=user,
        allocation=allocation,
        account=account,
        max_time_s=max_time_s,
        idle_timeout_s=idle_s,
        exclusive_s=exclusive_of(policy, command.job_class),
        job_class=command.job_class,
    )
    return Done(
        f"session {session_id} opened for {max_time_s:g} s (idle timeout {idle_s:g} s)",
        fields={"allocation": allocation},
        events=[opened_event(opened)],
    )


def _verified_account(
    state: OwnerState, policy: Policy, allocation: str | None, user: str
) -> str | None:
    """The account of the allocation a session names, from the registry; refused when the
    allocation ended, is unknown (at once: a command has no registration grace; the refusal
    is retryable) or is another user's."""
    if allocation is None:
        return None
    if allocation in state.ended_allocations:
        raise Refused(ErrorCode.ALLOCATION_ENDED, f"Slurm allocation {allocation} ended")
    context = of_allocation(state, policy, allocation, user)
    if isinstance(context, Unregistered):
        error = JobError(
            code=ErrorCode.UNKNOWN_ALLOCATION,
            message=f"Slurm allocation {allocation} is not registered with the QPU owner (no "
            "allocation-started from its prolog): open the session from inside your "
            "allocation, or ask the site to install the qsched prolog",
            field="allocation",
            retryable=True,
            details={"allocation": allocation},
        )
        raise Refused(error.code, error.message, error)
    if isinstance(context, JobError):
        raise Refused(
            context.code, context.message, context.model_copy(update={"field": "allocation"})
        )
    return context.account


def _own_session(state: OwnerState, policy: Policy, given: Command) -> Session:
    session_id = given.command.session_id or ""
    session = state.sessions.get(session_id)
    if session is None:
        raise Refused(ErrorCode.UNKNOWN_SESSION, f"no session {session_id} is known")
    user = given.user
    if session.user != user and not (
        is_operator(policy, given) or (user is not None and user in policy.epilog_users)
    ):
        raise Refused(ErrorCode.UNKNOWN_SESSION, f"no session {session_id} is known")
    return session


def close_session(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """``session-close``: no new jobs; those waiting or running finish."""
    session = _own_session(state, policy, given)
    if not session.is_open:
        return Done(f"session {session.session_id} already ended ({session.ended_reason})")
    return Done(
        f"session {session.session_id} closed: its queued and running jobs finish",
        events=[ended_event(session, CLOSED)],
    )


def cancel_session(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """``session-cancel``: no new jobs, and its waiting jobs are canceled."""
    session = _own_session(state, policy, given)
    error = JobError(
        code=ErrorCode.CANCELED_BY_USER,
        message=f"session {session.session_id} canceled by {given.user}",
    )
    done = Done("")
    for job in list(state.index.session_jobs(session.session_id)):
        events, effects = end_waiting(job, JobState.CANCELED, error, now)
        done.events += events
        done.effects += effects
    canceled = len(done.events)
    if session.is_open:
        done.events.append(ended_event(session, CANCELED, canceled))
    done.message = f"session {session.session_id} canceled: {canceled} queued job(s) canceled"
    return done


# ---- jobs and time -----------------------------------------------------------------------------


def arrival(
    state: OwnerState, policy: Policy, job: JobRequest, user: str, verified: VerifiedContext
) -> JobError | list[Event]:
    """What a job naming a session means: the refusal, or the events that go before its
    acceptance (an implicit ``session.opened``, owned by the job's verified user and
    allocation)."""
    session_id = job.session_id
    if not session_id:
        return []
    session = state.sessions.get(session_id)
    if session is not None and session.explicit:
        if session.user != user:
            return JobError(
                code=ErrorCode.NOT_YOUR_SESSION,
                message=f"session {session_id} is another user's",
                field="session_id",
            )
        if not session.is_open:
            return JobError(
                code=ErrorCode.SESSION_ENDED,
                message=f"session {session_id} ended ({session.ended_reason}): open a new one",
                field="session_id",
            )
        return []
    if session is not None and session.is_open:
        return []
    if not job.opens_session:
        return JobError(
            code=ErrorCode.UNKNOWN_SESSION,
            message=f"no session {session_id} is open: open one first",
            field="session_id",
        )
    max_time_s, idle_s = limits(policy, None, None)
    opened = SessionOpened(
        session_id=session_id,
        user=user,
        allocation=verified.allocation,
        account=verified.account,
        max_time_s=max_time_s,
        idle_timeout_s=idle_s,
        exclusive_s=exclusive_of(policy, job.job_class),
        job_class=job.job_class,
        explicit=False,
    )
    return [opened_event(opened)]


def stranger(
    state: OwnerState, job: JobRequest, user: str, verified: VerifiedContext
) -> list[Event]:
    """A ``job.context_mismatch`` when a job names an open session that is not its own (another
    user's, or its user's from another allocation): the job is accepted outside the session
    (`session_fold.belongs`), so it gets none of its grace, and the log says so."""
    session = state.sessions.get(job.session_id or "")
    if session is None or not session.is_open or belongs(session, user, verified.allocation):
        return []
    whose = "another user's" if session.user != user else f"allocation {session.allocation}'s"
    return [
        make_event(
            Topic.JOB_CONTEXT_MISMATCH,
            ContextMismatch(
                claimed={"session_id": session.session_id},
                verified=verified,
                fields=("session_id",),
            ),
            job_id=job.job_id,
            job_class=job.job_class,
            user=user,
            reason=f"the job names session {session.session_id}, which is {whose}: it runs "
            "outside that session, without its grace",
        )
    ]


def expired(state: OwnerState, now: datetime) -> list[Event]:
    """The open sessions whose time ran out, or that sat idle past their idle timeout."""
    events = []
    busy = {r.job.session_id for r in (state.running, *state.lanes.values()) if r is not None}
    for session in state.sessions.values():
        if not session.is_open:
            continue
        if (now - session.opened_at).total_seconds() > session.max_time_s:
            events.append(ended_event(session, MAX_TIME))
            continue
        if session.session_id in busy or any(state.index.session_jobs(session.session_id)):
            continue
        since = session.last_activity_at or session.opened_at
        if (now - since).total_seconds() > session.idle_timeout_s:
            events.append(ended_event(session, IDLE))
    return events


def allocation_ended(state: OwnerState, allocation: str) -> list[Event]:
    """The open sessions of an allocation that ended."""
    return [
        ended_event(s, ALLOCATION_ENDED)
        for s in state.sessions.values()
        if s.is_open and s.allocation == allocation
    ]


def waiting_of(state: OwnerState, session_id: str) -> list[Waiting]:
    """The session's waiting jobs."""
    return list(state.index.session_jobs(session_id))


def exclusive_hold(state: OwnerState, policy: Policy, now: datetime) -> Session | None:
    """The session the QPU waits for, if any: its class has ``exclusive_sessions_s``, the QPU's
    last run was its job, that run ended less than that long ago, and its next job has not
    arrived yet (once it has, the grace puts it first). The wait is bounded by the class's
    setting, so production never waits longer than that per iteration, and the session's turn
    by the policy's (``session_max_consecutive``, ``session_turn_max_qpu_s``)."""
    session = state.sessions.get(state.last_run_session or "")
    if session is None or not session.is_open or session.exclusive_s is None:
        return None
    ended = session.last_run_ended_at
    if ended is None or (now - ended).total_seconds() >= session.exclusive_s:
        return None
    if not session.within(GraceBounds.of(policy)):
        return None  # the session's turn reached the policy's bounds: no more holding
    if any(state.index.session_jobs(session.session_id)):
        return None
    return session


def outranks(policy: Policy, job_class: str, session: Session) -> bool:
    """A job of `job_class` goes before the session's class by rank (exclusivity never holds
    such a job: calibration, or any class ranked before the session's)."""
    mine = policy.classes.get(session.job_class or "")
    theirs = policy.classes.get(job_class)
    return mine is None or theirs is None or theirs.rank < mine.rank
