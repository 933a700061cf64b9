"""How a session stands at `now`, as `status`, `queue`, `top` and `history` show it (pure).

A session's phase, the first that holds:

- ``ended``: closed, canceled, out of time, idle or its allocation ended (`ended_reason`);
- ``holding``: its class's exclusivity keeps the QPU free for its next job
  (`consumers.core.sessions.exclusive_hold`); `left_s` is what is left of that wait;
- ``grace``: its last run ended within ``session_grace_s`` and its turn is within the policy's
  bounds (`StateData.sessions_in_grace`, `Session.within`), so its next job goes first in its
  class; `left_s` is what is left of the window;
- ``running``: a job of it is on the QPU or an emulator lane;
- ``queued``: jobs of it wait;
- ``idle``: none of its jobs waits or runs; `left_s` until its idle timeout ends it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from consumers.core.sessions import exclusive_hold
from consumers.core.state import OwnerState
from consumers.core.state_data import GraceBounds, Session
from schemas.policy import Policy
from schemas.reports import SessionPhase, SessionSummary

MAX_SESSIONS_SHOWN = 200


class SessionPhases:
    """The phase of each session asked about at one `now` (each session worked out once, so a
    queue of many jobs of one session pays for it once)."""

    def __init__(self, state: OwnerState, policy: Policy, now: datetime) -> None:
        self.state = state
        self.policy = policy
        self.now = now
        bounds = GraceBounds.of(policy)
        holding = exclusive_hold(state, policy, now)
        self._holding = holding.session_id if holding is not None else None
        self._grace = state.sessions_in_grace(now, policy.session_grace_s, bounds)
        runs = (state.running, *state.lanes.values())
        self._busy = {r.job.session_id for r in runs if r is not None and r.job.session_id}
        self._known: dict[str, SessionSummary] = {}

    def summary(self, session_id: str) -> SessionSummary | None:
        """The session as the owner sees it now (None: not known, or forgotten)."""
        found = self._known.get(session_id)
        if found is None:
            session = self.state.sessions.get(session_id)
            if session is None:
                return None
            found = self._known[session_id] = self._summary(session)
        return found

    def _summary(self, session: Session) -> SessionSummary:
        phase, left_s = self._phase(session)
        waiting = sum(1 for _ in self.state.index.session_jobs(session.session_id))
        return SessionSummary(
            session_id=session.session_id,
            user=session.user,
            allocation=session.allocation,
            opened_at=session.opened_at,
            runs=session.runs,
            qpu_s=round(session.qpu_s, 3),
            exclusive_s=session.exclusive_s,
            explicit=session.explicit,
            phase=phase,
            left_s=round(max(left_s, 0.0), 3) if left_s is not None else None,
            waiting=waiting,
            job_class=session.job_class,
            ends_at=session.opened_at + timedelta(seconds=session.max_time_s),
            ended_at=session.ended_at,
            ended_reason=session.ended_reason,
        )

    def _phase(self, session: Session) -> tuple[SessionPhase, float | None]:
        if not session.is_open:
            return SessionPhase.ENDED, None
        since_run_s = (
            (self.now - session.last_run_ended_at).total_seconds()
            if session.last_run_ended_at is not None
            else 0.0
        )
        if session.session_id == self._holding and session.exclusive_s is not None:
            return SessionPhase.HOLDING, session.exclusive_s - since_run_s
        if session.session_id in self._grace:
            return SessionPhase.GRACE, self.policy.session_grace_s - since_run_s
        if session.session_id in self._busy:
            return SessionPhase.RUNNING, None
        if any(self.state.index.session_jobs(session.session_id)):
            return SessionPhase.QUEUED, None
        idle_since = session.last_activity_at or session.opened_at
        return SessionPhase.IDLE, session.idle_timeout_s - (self.now - idle_since).total_seconds()


def open_sessions(state: OwnerState, policy: Policy, now: datetime) -> list[SessionSummary]:
    """The open sessions, oldest first (at most `MAX_SESSIONS_SHOWN`)."""
    phases = SessionPhases(state, policy, now)
    found = []
    for session in state.sessions.values():
        if session.is_open:
            summary = phases.summary(session.session_id)
            if summary is not None:
                found.append(summary)
            if len(found) >= MAX_SESSIONS_SHOWN:
                break
    return found
