"""How the event fold changes sessions (`Session`): opened, a run of one of its jobs ended,
ended. `OwnerState.apply` calls these; what a session's jobs may do is `consumers.core.sessions`.
"""

from __future__ import annotations

from datetime import datetime

from consumers.core.order import Waiting
from consumers.core.state_data import Run, Session, StateData
from consumers.errors import Ignored
from schemas.envelope import Event
from schemas.events import SessionEnded, SessionOpened, payload_of

REMEMBERED_SESSIONS = 10_000  # ended sessions kept (a job naming one is refused)
DEFAULT_SESSION_S = 8 * 3600.0


def session_run_ended(state: StateData, run: Run, qpu_s: float, at: datetime) -> None:
    """A QPU run of a session's job ended: its grace window starts, its counters grow, and its
    turn goes on (the run started in grace) or starts (it won the QPU without)."""
    session = state.sessions.get(run.job.session_id or "")
    state.last_run_session = session.session_id if session is not None else None
    if session is None:
        return
    if not run.in_grace:
        session.turn_runs, session.turn_qpu_s = 0, 0.0
    session.last_run_ended_at = session.last_activity_at = at
    session.runs += 1
    session.qpu_s += qpu_s
    session.turn_runs += 1
    session.turn_qpu_s += max(qpu_s, 0.0)


def belongs(session: Session, user: str, allocation: str | None) -> bool:
    """Whether a job of `user` from `allocation` is one of `session`'s: the session's user's,
    and from its allocation when both name one. Another's job naming it is not (no grace, not
    canceled with it, not keeping it open), nor its user's job from another allocation; a job
    that claims no allocation (the QRMI gateway's: QRMI names the session, whose allocation
    the session holds) is its user's session's."""
    return session.user == user and (
        session.allocation is None or allocation is None or session.allocation == allocation
    )


def session_opened(state: StateData, event: Event) -> None:
    opened = payload_of(event, SessionOpened)
    known = state.sessions.get(opened.session_id)
    if known is not None and known.is_open:
        raise Ignored(f"session {opened.session_id} is open already")
    state.sessions[opened.session_id] = Session(
        session_id=opened.session_id,
        user=opened.user,
        opened_at=event.at,
        max_time_s=opened.max_time_s,
        idle_timeout_s=opened.idle_timeout_s,
        allocation=opened.allocation,
        account=opened.account,
        exclusive_s=opened.exclusive_s,
        job_class=opened.job_class,
        explicit=opened.explicit,
        last_activity_at=event.at,
    )


def session_ended(state: StateData, event: Event) -> None:
    ended = payload_of(event, SessionEnded)
    session = state.sessions.get(ended.session_id)
    if session is None:
        raise Ignored(f"no session {ended.session_id} is known")
    if not session.is_open:
        raise Ignored(f"session {ended.session_id} ended before")
    session.ended_at, session.ended_reason = event.at, ended.reason
    closed = [s for s in state.sessions.values() if not s.is_open]
    for old in closed[: max(len(closed) - REMEMBERED_SESSIONS, 0)]:
        del state.sessions[old.session_id]


def implicit_session(job: Waiting, at: datetime) -> Session:
    """The session a job opens by naming an unknown session id: its user's and allocation's,
    with the default limits (the policy's are applied when `step` opens one)."""
    return Session(
        session_id=job.session_id or "",
        user=job.user,
        opened_at=at,
        max_time_s=DEFAULT_SESSION_S,
        idle_timeout_s=DEFAULT_SESSION_S,
        allocation=job.allocation,
        account=job.account,
        explicit=False,
        last_activity_at=at,
    )
