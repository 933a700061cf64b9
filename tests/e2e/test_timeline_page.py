"""The HTML timeline as Chromium draws it (issue 24 item 11): job labels on the bars, back-to-back
runs told apart, the maintenance tip with the operator's message and who set it, readable times,
the chart over the page's width, and an axis that starts at the first run, not at the owner's
start-up. The page comes from a synthetic log (`tests.support.eventlogs`) and is rendered in headless
Chromium (`tests.e2e.chromium`)."""

from __future__ import annotations

import re
from itertools import pairwise
from pathlib import Path

import pytest
from PIL import Image

from consumers.tools.eventlog.html import LABEL_W, STATE_COLOURS, render_html
from consumers.tools.eventlog.model import build_timeline
from schemas.enums import Mode
from schemas.envelope import Event
from tests.e2e.chromium import dump_dom, screenshot
from tests.support.eventlogs import activated, control, final, queued, started

pytestmark = pytest.mark.e2e

PAGE_W = 1400
JOBS = [f"{n}1234567-aaaa-bbbb-cccc-000000000000" for n in "abcd"]


def demo_like_log() -> list[Event]:
    """An owner that starts 60 s before its first job, four back-to-back 10 s runs, then an
    operator's maintenance with a message."""
    events = [activated(0, 1)]
    for i, job in enumerate(JOBS):
        events.append(queued(job, 59 + i * 0.1))
    for i, job in enumerate(JOBS):
        events += [started(job, 60 + 10 * i), final(job, 70 + 10 * i)]
    events.append(
        control("mode", 100, user="olga", mode=Mode.MAINTENANCE, message="laser realignment")
    )
    events.append(control("mode", 110, user="olga", mode=Mode.PRODUCTION))
    return events


def rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def test_the_timeline_labels_bars_parts_runs_and_fills_the_page(tmp_path: Path) -> None:
    """Given that log, the page Chromium draws at 1400 px: every QPU bar names its job, four
    back-to-back runs show four bars (three white seams between them), the maintenance tip gives
    the message and who set it, times read to the second, the first run starts at the axis's
    left (not after 60 s of start-up) and the chart reaches the page's right edge (was a fixed
    1,100 px)."""
    page = tmp_path / "timeline.html"
    page.write_text(render_html(build_timeline(demo_like_log())), encoding="utf-8")
    dom = dump_dom(page, tmp_path)
    labels = re.findall(r'<text class="job-label"[^>]*>([^<]+)</text>', dom)
    assert [label for label in labels if label in {j[:8] for j in JOBS}][:4] == [
        j[:8] for j in JOBS
    ], labels
    assert "maintenance: laser realignment" in dom and "set by olga" in dom
    assert not re.search(r"\d\d:\d\d:\d\d\.\d{6}", dom), "microseconds in the page"
    assert "2026-12-01 08:00:00 UTC" in dom  # the header's first event, to the second

    shot = Image.open(screenshot(page, tmp_path, tmp_path / "shot.png", (PAGE_W, 500)))
    pixels = shot.convert("RGB").load()
    done = rgb(STATE_COLOURS["DONE"])
    width, height = shot.size
    chart_left = 16 + LABEL_W  # body margin + label column (the legend's keys are left of it)
    bar_pixels = [
        (x, y) for y in range(height) for x in range(chart_left, width) if pixels[x, y] == done
    ]
    assert bar_pixels, "no DONE bar drawn"
    top = min(y for _, y in bar_pixels)  # the QPU track comes first
    row = top + 13  # under the labels' baseline, inside the bars
    xs = [x for x in range(width) if pixels[x, row] == done]
    seams = sum(1 for a, b in pairwise(xs) if b > a + 1)
    assert seams >= 3, f"back-to-back runs merge into one band (seams: {seams})"
    assert min(xs) - chart_left < 0.05 * (width - chart_left), (min(xs), chart_left)
    qpu_track = rgb("#f4f8ff")
    track_xs = [x for x in range(width) if pixels[x, row + 3] in (qpu_track, done)]
    assert max(track_xs) > width - 60, f"the chart stops at {max(track_xs)} of {width} px"
