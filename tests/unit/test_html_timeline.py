"""The HTML timeline is one self-contained page with a bar per run, coloured by state."""

from __future__ import annotations

import re

from consumers.tools.eventlog.html import render_html
from consumers.tools.eventlog.model import build_timeline
from tests.support.eventlogs import big_log, scenario


def test_one_qpu_bar_and_one_user_bar_per_run_with_a_hover_title() -> None:
    page = render_html(build_timeline(scenario()))
    qpu = re.findall(r'<rect class="bar qpu s-(\w+)"[^>]*><title>([^<]*)</title>', page)
    assert [state for state, _ in qpu] == [
        "DONE",
        "PREEMPTED",
        "ERROR",
        "INTERRUPTED",
        "DONE",
        "RUNNING",
    ]
    assert "user bob · class development" in qpu[1][1]
    assert "ended: production preempts development" in qpu[1][1]
    assert len(re.findall(r'<rect class="bar user ', page)) == 6
    assert len(re.findall(r'<rect class="bar class ', page)) == 6
    assert {"class production", "class development"} <= set(
        re.findall(r'title="(class \w+)"', page)
    )
    assert {"user alice", "user bob", "user carol"} <= set(re.findall(r'title="(user \w+)"', page))
    assert len(re.findall(r'<rect class="period p-', page)) == 4


def test_the_page_needs_no_network_and_no_script() -> None:
    page = render_html(build_timeline(big_log(200)))
    assert "<script" not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "@import" not in page and "url(" not in page


def test_thousands_of_jobs_get_a_scrolling_chart_of_at_least_a_few_pixels_each() -> None:
    page = render_html(build_timeline(big_log(3000)))
    width = int(re.search(r"<svg [^>]*min-width:(\d+)px", page).group(1))  # type: ignore[union-attr]
    assert width >= 3000 * 3
    assert len(re.findall(r'class="bar qpu ', page)) == 3000
