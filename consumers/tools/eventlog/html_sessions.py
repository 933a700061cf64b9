"""Sessions on the HTML timeline (`consumers.tools.eventlog.html`): one track per session, its span from
opening to end drawn as a translucent band labelled with its id and user, and a hover tip with
its allocation and why it ended. Past `SESSION_TRACKS` sessions, the rest share one track.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from html import escape

from consumers.tools.eventlog.shapes import SessionSpan

SESSION_COLOUR = "#3949ab"
SESSION_TRACKS = 12
MIN_BAND_PCT = 0.05  # the narrowest band drawn, in percent of the chart

Track = tuple[str, str, list[str]]  # (name, kind, svg shapes), as `render_html` draws tracks


def session_tracks(
    sessions: list[SessionSpan], x: Callable[[datetime], float], track_h: int, band_h: int
) -> list[Track]:
    """The session tracks, in opening order."""
    shown = sessions if len(sessions) <= SESSION_TRACKS else sessions[: SESSION_TRACKS - 1]
    tracks: list[Track] = [
        (f"session {s.session_id[:8]} {s.user or '?'}", "session", [_band(s, x, track_h, band_h)])
        for s in shown
    ]
    rest = sessions[len(shown) :]
    if rest:
        bands = [_band(s, x, track_h, band_h) for s in rest]
        tracks.append((f"{len(rest)} more sessions", "session", bands))
    return tracks


def _band(span: SessionSpan, x: Callable[[datetime], float], track_h: int, band_h: int) -> str:
    left = x(span.started_at)  # percent of the chart's width
    w = max(x(span.ended_at) - left, MIN_BAND_PCT)
    how = "explicit" if span.explicit else "opened by its first job"
    end = "still open when the log ends" if span.open else f"ended: {span.reason or '?'}"
    tip = "\n".join(
        line
        for line in (
            f"session {span.session_id} ({how})",
            f"user {span.user or '?'}",
            f"allocation {span.allocation}" if span.allocation else "",
            f"{span.started_at:%Y-%m-%d %H:%M:%S} → {span.ended_at:%Y-%m-%d %H:%M:%S} UTC",
            end,
        )
        if line
    )
    y = (track_h - band_h) / 2
    label = (  # clipped by the band's own viewport where the band is narrow
        f'<text class="session-label" x="3" y="{band_h - 4}">'
        f"{escape(span.session_id[:8])} {escape(span.user or '')}</text>"
    )
    state = "open" if span.open else "ended"
    return (
        f'<svg class="session session-{state}" data-session="{escape(span.session_id)}" '
        f'x="{left:.4f}%" y="{y}" width="{w:.4f}%" height="{band_h}">'
        f'<rect class="session-band" width="100%" height="100%">'
        f"<title>{escape(tip)}</title></rect>{label}</svg>"
    )


def session_css() -> str:
    """The bands' style: translucent, so a run under the same time reads through."""
    return (
        f".session-band{{fill:{SESSION_COLOUR};fill-opacity:.35;stroke:{SESSION_COLOUR}}}"
        ".session-open .session-band{stroke-dasharray:4 2}"
        ".session-label{font-size:10px;fill:#1a237e;pointer-events:none}"
    )
