"""Budgets on the HTML timeline (`consumers.tools.eventlog.html`): one track of marks, each a thin
flag at its moment (`consumers.tools.eventlog.budgets`): an operator's set or top-up, spending past the
warning share, a budget spent; its hover tip says which budget, what and who. A mark before the
chart's first run is drawn at its left edge (its tip keeps the time).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from html import escape

from consumers.tools.eventlog.shapes import BudgetMark

MARK_COLOURS = {"set": "#1e88e5", "top-up": "#43a047", "warn": "#fb8c00", "spent": "#e53935"}
MARK_W = 6  # px

Track = tuple[str, str, list[str]]  # (name, kind, svg shapes), as `render_html` draws tracks


def budget_track(
    marks: list[BudgetMark], x: Callable[[datetime], float], track_h: int
) -> list[Track]:
    """The budgets track (none without marks)."""
    if not marks:
        return []
    return [("budgets", "budget", [_mark(m, x, track_h) for m in marks])]


def _mark(mark: BudgetMark, x: Callable[[datetime], float], track_h: int) -> str:
    left = min(max(x(mark.at), 0.0), 100.0)
    when = mark.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    tip = "\n".join(line for line in (mark.text, f"by {mark.by}" if mark.by else "", when) if line)
    return (
        f'<svg class="budget-mark b-{mark.kind}" data-budget="{escape(mark.key)}" '
        f'x="{left:.4f}%" y="2" width="{MARK_W}" height="{track_h - 4}" overflow="visible">'
        f'<rect width="{MARK_W}" height="100%"><title>{escape(tip)}</title></rect></svg>'
    )


def budget_css() -> str:
    """The marks' colours, by kind."""
    return "".join(f".b-{kind} rect{{fill:{c}}}" for kind, c in MARK_COLOURS.items())


def budget_legend() -> list[tuple[str, str]]:
    """(name, colour) of each kind of mark, for the page's legend."""
    return [(f"budget {kind}", c) for kind, c in MARK_COLOURS.items()]
