"""A session's phase in words, the same in `qsched status`, `queue` and `top` (pure)."""

from __future__ import annotations

from schemas.reports import SessionPhase, SessionSummary


def left(seconds: float | None) -> str:
    """A short duration: ``42s``, ``3m05s``, ``2h10m``."""
    s = max(round(seconds or 0.0), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def phase_text(
    phase: SessionPhase | None, left_s: float | None, ended_reason: str | None = None
) -> str:
    """``grace 12s left``, ``holds the QPU 3s``, ``idle, ends in 4m00s``, ``ended (closed)``..."""
    if phase is None:
        return "?"
    if phase is SessionPhase.HOLDING:
        return f"holds the QPU {left(left_s)}"
    if phase is SessionPhase.GRACE:
        return f"grace {left(left_s)} left"
    if phase is SessionPhase.IDLE and left_s is not None:
        return f"idle, ends in {left(left_s)}"
    if phase is SessionPhase.ENDED:
        return f"ended ({ended_reason})" if ended_reason else "ended"
    return phase.value


def summary_text(session: SessionSummary) -> str:
    """One session on one line: id, owner, phase, jobs waiting, runs so far."""
    waiting = f", {session.waiting} queued" if session.waiting else ""
    return (
        f"session {session.session_id[:8]}  {session.user or '?'}"
        f"{'  allocation ' + session.allocation if session.allocation else ''}  "
        f"{phase_text(session.phase, session.left_s, session.ended_reason)}{waiting}  "
        f"{session.runs} runs, {session.qpu_s:.1f} QPU s"
    )
