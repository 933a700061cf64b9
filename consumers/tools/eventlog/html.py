"""Export a `Timeline` to one self-contained HTML page: inline CSS and SVG, no script, no network.

Tracks (swimlanes): the QPU (every run), one per emulator lane, one per kind of period (calibration, pause, drain,
maintenance, down, reservation), one of budget marks (`consumers.tools.eventlog.html_budgets`), one per session (its span as a band: `consumers.tools.eventlog.html_sessions`), then one per job class and one per user. Bars are coloured by the run's final state, carry
the job's short id where they are wide enough (each bar is a nested SVG viewport, which clips its
label) and a ``<title>`` (the browser's hover tip) with the job's details; a white edge tells
back-to-back runs apart. Positions are percentages of the chart, so the chart takes the page's
width; with many runs it keeps a minimum width of a few pixels per run and scrolls sideways, so
a day with thousands of jobs stays readable. The axis starts at the first run or period, not at
the first event (an owner's start-up before any job is no part of the picture); track labels stay
in a column of their own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from html import escape

from consumers.tools.eventlog.html_budgets import budget_css, budget_legend, budget_track
from consumers.tools.eventlog.html_sessions import session_css, session_tracks
from consumers.tools.eventlog.shapes import Period, Run, Timeline

STATE_COLOURS = {
    "DONE": "#2e7d32",
    "ERROR": "#c62828",
    "CANCELED": "#9e9e9e",
    "TIMED_OUT": "#ef6c00",
    "REJECTED": "#6d4c41",
    "PREEMPTED": "#7b1fa2",
    "INTERRUPTED": "#f9a825",
    "RUNNING": "#1565c0",
}
PERIOD_COLOURS = {
    "calibration": "#00838f",
    "pause": "#546e7a",
    "drain": "#8d6e63",
    "maintenance": "#ad1457",
    "down": "#212121",
    "reservation": "#c0ca33",
}
TRACK_H = 22
BAR_H = 16
LABEL_W = 170
AXIS_H = 24
MAX_W = 60_000
PX_PER_RUN = 4
TYPICAL_W = 1200  # px the axis spaces its ticks for when the chart is not wider
MIN_BAR_PCT = 0.05  # the narrowest bar drawn, in percent of the chart


def render_html(timeline: Timeline, title: str = "qsched QPU timeline") -> str:
    """The whole page as a string."""
    runs, periods = timeline.runs, timeline.periods
    t0 = _first(timeline)
    span_s = max(_last(timeline, t0) - t0, 1e-3)
    min_w = min(PX_PER_RUN * len(runs), MAX_W)  # the chart's least width: scrolls past the page

    def x(moment: datetime) -> float:
        """Percent of the chart's width."""
        return (moment.timestamp() - t0) / span_s * 100

    tracks: list[tuple[str, str, list[str]]] = [("QPU", "qpu", [_bar(r, x, "qpu") for r in runs])]
    for lane in sorted({r.lane or "" for r in timeline.lane_runs}):
        mine = [r for r in timeline.lane_runs if r.lane == lane]
        tracks.append((lane, "qpu", [_bar(r, x, "qpu") for r in mine]))
    for kind in PERIOD_COLOURS:
        spells = [p for p in periods if p.kind == kind]
        if spells:
            tracks.append((kind, "period", [_period(p, x) for p in spells]))
    tracks += budget_track(timeline.budget_marks, x, TRACK_H)
    tracks += session_tracks(timeline.sessions, x, TRACK_H, BAR_H)
    for job_class in sorted({r.job_class for r in runs}):
        mine = [r for r in runs if r.job_class == job_class]
        tracks.append((f"class {job_class}", "class", [_bar(r, x, "class") for r in mine]))
    for user in sorted({r.user or "(unknown)" for r in runs}):
        mine = [r for r in runs if (r.user or "(unknown)") == user]
        tracks.append((f"user {user}", "user", [_bar(r, x, "user") for r in mine]))
    height = AXIS_H + TRACK_H * len(tracks)
    labels = "".join(
        f'<div class="label" style="height:{TRACK_H}px" title="{escape(name)}">{escape(name)}</div>'
        for name, _kind, _ in tracks
    )
    rows = "".join(
        f'<g class="track track-{kind}" transform="translate(0,{AXIS_H + i * TRACK_H})">'
        f'<rect class="track-bg" x="0" y="0" width="100%" height="{TRACK_H}"/>{"".join(shapes)}</g>'
        for i, (_name, kind, shapes) in enumerate(tracks)
    )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="100%" height="{height}" '
        f'style="min-width:{min_w}px">{_axis(t0, span_s, max(min_w, TYPICAL_W), height)}{rows}</svg>'
    )
    return _PAGE.format(
        title=escape(title),
        css=_css(),
        summary=_summary(timeline),
        legend=_legend(),
        labels=f'<div style="height:{AXIS_H}px"></div>{labels}',
        svg=svg,
    )


def _first(timeline: Timeline) -> float:
    """Where the axis starts: the first run, lane run or period (the first event only when
    there is none): what came before, an owner starting, is empty time."""
    times = [r.started_at for r in (*timeline.runs, *timeline.lane_runs)]
    times += [p.started_at for p in timeline.periods]
    if not times and timeline.first_at is not None:
        times.append(timeline.first_at)
    return min(times).timestamp() if times else 0.0


def _last(timeline: Timeline, t0: float) -> float:
    times = [r.ended_at for r in timeline.runs] + [p.ended_at for p in timeline.periods]
    if timeline.last_at is not None:
        times.append(timeline.last_at)
    return max(times).timestamp() if times else t0


def _bar(run: Run, x: Callable[[datetime], float], kind: str) -> str:
    left = x(run.started_at)
    w = max(x(run.ended_at) - left, MIN_BAR_PCT)
    duration_s = (run.ended_at - run.started_at).total_seconds()
    tip = "\n".join(
        line
        for line in (
            f"job {run.job_id}",
            f"state {run.state}",
            f"user {run.user or '?'} · class {run.job_class}",
            f"shots {run.shots} · epoch {run.epoch} · attempt {run.attempt}",
            f"{_when(run.started_at)} → {_when(run.ended_at)} ({duration_s:.3f} s)",
            f"started: {run.reason}" if run.reason else "",
            f"ended: {run.end_reason}" if run.end_reason else "",
        )
        if line
    )
    return (
        f'<svg class="box" x="{left:.4f}%" y="{(TRACK_H - BAR_H) / 2}" width="{w:.4f}%" '
        f'height="{BAR_H}"><rect class="bar {kind} s-{run.state}" data-job="{escape(run.job_id)}" '
        f'width="100%" height="100%"><title>{escape(tip)}</title></rect>'
        f'<text class="job-label" x="3" y="{BAR_H - 4}">{escape(run.job_id[:8])}</text></svg>'
    )


def _period(period: Period, x: Callable[[datetime], float]) -> str:
    left = x(period.started_at)
    w = max(x(period.ended_at) - left, MIN_BAR_PCT)
    tip = "\n".join(
        line
        for line in (
            f"{period.kind}: {period.message or period.reason or ''}",
            f"set by {period.by}" if period.by else "",
            f"{_when(period.started_at)} → {_when(period.ended_at)}"
            + (" (still on when the log ends)" if period.open else ""),
        )
        if line
    )
    return (
        f'<rect class="period p-{period.kind}" x="{left:.4f}%" y="{(TRACK_H - BAR_H) / 2}" '
        f'width="{w:.4f}%" height="{BAR_H}"><title>{escape(tip)}</title></rect>'
    )


def _when(moment: datetime) -> str:
    """A time as people read it: to the second, in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _axis(t0: float, span_s: float, width: int, height: int) -> str:
    """Time ticks, spaced for a chart about `width` pixels wide, at percentages of it."""
    step_s = next(
        (
            s
            for s in (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 7200, 21600)
            if span_s / s <= width / 90
        ),
        43200,
    )
    ticks: list[str] = []
    t = 0.0
    while t <= span_s:
        pct = t / span_s * 100
        if pct > 95 and ticks:  # its label would run past the chart's right edge
            break
        label = datetime.fromtimestamp(t0 + t, UTC).strftime("%H:%M:%S")
        ticks.append(
            f'<line class="tick" x1="{pct:.3f}%" x2="{pct:.3f}%" y1="{AXIS_H - 6}" y2="{height}"/>'
            f'<text x="{pct:.3f}%" dx="2" y="{AXIS_H - 9}">{label}</text>'
        )
        t += step_s
    return f'<g class="axis">{"".join(ticks)}</g>'


def _summary(timeline: Timeline) -> str:
    states = Counter(r.state for r in timeline.runs)
    busy = timeline.busy_s()
    span = timeline.span_s()
    util = f"{100 * busy / span:.1f} %" if span else "n/a"
    parts = ", ".join(f"{escape(s)} {n}" for s, n in sorted(states.items()))
    first = _when(timeline.first_at) if timeline.first_at else "-"
    last = _when(timeline.last_at) if timeline.last_at else "-"
    return (
        f"<p>{len(timeline.runs)} runs ({parts or 'none'}) · QPU busy {busy:.1f} s of "
        f"{span:.1f} s ({util}) · {timeline.events} events · {escape(first)} → {escape(last)}</p>"
    )


def _legend() -> str:
    items = [(s, c) for s, c in STATE_COLOURS.items()] + list(PERIOD_COLOURS.items())
    items += budget_legend()
    return "".join(
        f'<span class="key"><i style="background:{c}"></i>{escape(name)}</span>'
        for name, c in items
    )


def _css() -> str:
    fills = "".join(f".s-{s}{{fill:{c}}}" for s, c in STATE_COLOURS.items())
    fills += "".join(f".p-{k}{{fill:{c}}}" for k, c in PERIOD_COLOURS.items())
    return (
        "body{font:13px/1.4 system-ui,sans-serif;margin:16px;color:#222}"
        ".chart{display:flex;border:1px solid #ccc}"
        f".labels{{flex:none;width:{LABEL_W}px;border-right:1px solid #ccc;background:#fafafa}}"
        f".label{{padding:0 6px;line-height:{TRACK_H}px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}}"
        ".scroll{overflow-x:auto;flex:1}svg{display:block}"
        ".track-bg{fill:#fff;stroke:#eee}.track-qpu .track-bg{fill:#f4f8ff}"
        ".tick{stroke:#e0e0e0}.axis text{font-size:10px;fill:#666}"
        ".bar{stroke:#fff;stroke-width:2px}"  # half of it shows: back-to-back runs stay apart
        ".job-label{font-size:10px;fill:#fff;pointer-events:none}"
        ".bar:hover,.period:hover{stroke:#000;stroke-width:1}"
        ".key{margin-right:12px;white-space:nowrap}.key i{display:inline-block;width:10px;height:10px;margin-right:4px}"
        + fills
        + session_css()
        + budget_css()
    )


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>{css}</style></head>
<body><h1>{title}</h1>{summary}<p>{legend}</p>
<div class="chart"><div class="labels">{labels}</div><div class="scroll">{svg}</div></div>
</body></html>
"""
