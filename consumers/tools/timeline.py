"""The QPU timeline, rebuilt from the event log: which job held the QPU when, and how it ended.

`build_timeline` is pure (events in, bars out); `render_text` draws the bars for a terminal, one
row per job in start order, so an operator sees at a glance the order the policy chose, the gaps,
and what failed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from schemas.envelope import Event

STATE_MARK = {
    "DONE": "█",
    "ERROR": "✗",
    "CANCELED": "░",
    "TIMED_OUT": "▒",
    "REJECTED": "·",
    "INTERRUPTED": "↯",
}


@dataclass(frozen=True)
class Bar:
    """One run of one job on the QPU."""

    job_id: str
    job_class: str
    user: str | None
    started_at: datetime
    ended_at: datetime | None
    state: str | None
    shots: int


def build_timeline(events: Iterable[Event]) -> list[Bar]:
    """Pair every ``job.started`` with the job's next final event, in start order.

    A run that is started again before it ended (its owner died) shows as INTERRUPTED, ending
    where the next attempt begins.
    """
    open_runs: dict[str, Event] = {}
    bars: list[Bar] = []
    for event in events:
        if event.topic == "job.started" and event.job_id:
            earlier = open_runs.get(event.job_id)
            if earlier is not None:
                bars.append(
                    Bar(
                        event.job_id,
                        earlier.job_class or "",
                        earlier.user,
                        earlier.at,
                        event.at,
                        "INTERRUPTED",
                        0,
                    )
                )
            open_runs[event.job_id] = event
        elif event.result is not None and event.job_id in open_runs:
            start = open_runs.pop(event.job_id)
            bars.append(
                Bar(
                    event.job_id,
                    event.result.job_class,
                    start.user,
                    start.at,
                    event.at,
                    event.result.state.value,
                    event.result.shots,
                )
            )
    bars += [
        Bar(e.job_id or "", e.job_class or "", e.user, e.at, None, None, 0)
        for e in open_runs.values()
    ]
    return sorted(bars, key=lambda b: b.started_at)


def render_text(bars: list[Bar], width: int = 60) -> str:
    """The bars as a fixed-width chart with a time axis in seconds from the first start."""
    if not bars:
        return "(no job has run yet)"
    t0 = bars[0].started_at
    t1 = max((b.ended_at or b.started_at) for b in bars)
    span_s = max((t1 - t0).total_seconds(), 1e-3)
    lines = [f"{'job':<10} {'class':<12} {'state':<9} 0s{'':<{width - 8}}{span_s:>6.1f}s"]
    for bar in bars:
        begin = int((bar.started_at - t0).total_seconds() / span_s * (width - 1))
        end_at = bar.ended_at or t1
        end = max(begin + 1, int((end_at - t0).total_seconds() / span_s * (width - 1)) + 1)
        mark = STATE_MARK.get(bar.state or "", ">")
        row = " " * begin + mark * (end - begin)
        lines.append(
            f"{bar.job_id[:8]:<10} {bar.job_class:<12} {bar.state or 'RUNNING':<9} |{row:<{width}}|"
        )
    return "\n".join(lines)
