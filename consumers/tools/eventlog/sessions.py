"""Sessions in the event log read back: their spans for the HTML timeline, and their events in a
job's history. The `consumers.tools.eventlog.model` folds call `SessionLog.see` for each event; this
module is the one that knows the ``session.*`` topics and their fields. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from consumers.tools.eventlog.shapes import HistoryEntry, JobHistory, SessionSpan
from schemas.envelope import Event
from schemas.events import Topic
from schemas.reports import SessionSummary

OPENED, ENDED = Topic.SESSION_OPENED.value, Topic.SESSION_ENDED.value
MAX_SESSIONS = 10_000  # sessions remembered by one read (the owner's own bound)


def opened_summary(event: Event) -> str:
    """``session.opened``'s summary: whose, which allocation, how it was opened."""
    data = event.data
    how = "explicit" if data.get("explicit", True) else "opened by its first job"
    allocation = f", allocation {data['allocation']}" if data.get("allocation") else ""
    return f"session {data.get('session_id', '?')} of {event.user or '?'}{allocation}, {how}"


def ended_summary(event: Event) -> str:
    """``session.ended``'s summary: which session, why, jobs canceled with it."""
    data = event.data
    canceled = f", {data['canceled']} queued job(s) canceled" if data.get("canceled") else ""
    return f"session {data.get('session_id', '?')} ended: {data.get('reason', '?')}{canceled}"


@dataclass
class SessionLog:
    """The sessions of a stretch of the log, fed one event at a time."""

    spans: dict[str, SessionSpan] = field(default_factory=dict)
    entries: dict[str, list[HistoryEntry]] = field(default_factory=dict)

    def see(self, event: Event) -> None:
        """Take a ``session.*`` event (any other is ignored)."""
        session_id = event.data.get("session_id")
        if event.topic not in (OPENED, ENDED) or not isinstance(session_id, str):
            return
        if event.topic == OPENED:
            self.spans[session_id] = SessionSpan(
                session_id,
                event.user,
                event.data.get("allocation"),
                bool(event.data.get("explicit", True)),
                event.at,
                event.at,
            )
            summary = opened_summary(event)
        else:
            span = self.spans.get(session_id)
            if span is not None and span.open:
                span.ended_at, span.reason, span.open = event.at, event.data.get("reason"), False
            summary = ended_summary(event)
        self.entries.setdefault(session_id, []).append(
            HistoryEntry(event.at, event.topic, summary, event.reason)
        )
        while len(self.spans) > MAX_SESSIONS:
            forgotten = next(iter(self.spans))
            del self.spans[forgotten]
            self.entries.pop(forgotten, None)

    def finish(self, end: datetime | None) -> list[SessionSpan]:
        """Every span in opening order; those still open end at `end` (the log's last event)."""
        for span in self.spans.values():
            if span.open and end is not None:
                span.ended_at = max(end, span.started_at)
        return sorted(self.spans.values(), key=lambda s: s.started_at)

    def add_to(self, history: JobHistory) -> None:
        """The events of the job's session go into its history, in time order."""
        if history.session_id:
            with_session(history, self.entries.get(history.session_id, []))


def summary_entries(session: SessionSummary) -> list[HistoryEntry]:
    """A session as the owner knows it (its `SessionSummary`), as the history entries of its
    opening and, once it ended, its end (what `qsched history` shows when the owner answers)."""
    allocation = f", allocation {session.allocation}" if session.allocation else ""
    how = "explicit" if session.explicit else "opened by its first job"
    found = [
        HistoryEntry(
            session.opened_at,
            OPENED,
            f"session {session.session_id} of {session.user or '?'}{allocation}, {how}",
            None,
        )
    ]
    if session.ended_at is not None:
        found.append(
            HistoryEntry(
                session.ended_at,
                ENDED,
                f"session {session.session_id} ended: {session.ended_reason or '?'}",
                None,
            )
        )
    return found


def with_session(history: JobHistory, entries: list[HistoryEntry]) -> None:
    """Merge `entries` into the job's history by time (a tie keeps the job's event first)."""
    history.entries = sorted(history.entries + entries, key=lambda e: e.at)
