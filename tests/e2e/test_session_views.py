"""Sessions where the issue names them, against a real owner: `qsched status`, `queue` and `top`
(in a real tmux pane) while a session's job waits and after it ran; a job's `history` with its
session's opening and end; the owner's metrics (sessions opened and ended, the iteration gap);
and the HTML timeline's session band, drawn by headless Chromium (issue 20, item 3)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from schemas.enums import CommandName, JobState
from schemas.reports import SessionPhase
from tests.conftest import OwnerHarness
from tests.e2e.chromium import dump_dom, screenshot
from tests.e2e.terminal import TmuxTerminal
from tests.integration.test_metrics import METRICS_ENV, metrics_url, scrape, value
from tests.support.environment import client_env
from tests.support.owners import QSCHED, run_qsched, wait_running
from tests.support.sequences import analog_sequence
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

POLICY = "session_grace_s = 120\n"
SESSION_RGB = (0x39, 0x49, 0xAB)  # consumers.tools.eventlog.html_sessions.SESSION_COLOUR
SESSION_ALPHA = 0.35


def _policy(tmp_path: Path) -> str:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    return str(path)


def _cli(owners: OwnerHarness, *args: str) -> str:
    wide = {"COLUMNS": "200"}  # a table's cells unwrapped
    done = run_qsched(owners.broker.url, owners.broker.topology.namespace, *args, env=wide)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_a_session_shows_in_status_queue_and_top_while_its_job_waits_then_in_grace(
    owners: OwnerHarness, tmp_path: Path
) -> None:
    """Given an open session whose job waits behind a running job, then `status` lists the
    session as queued with one job, `queue` names the job's session and its phase, and `top` in
    an 80x24 tmux pane draws a sessions line; once the job ran, `status` shows the session in
    its grace window with the seconds left."""
    owners.start("--backend", "synthetic", "--shot-rate", "100", "--policy", _policy(tmp_path))
    client = owners.client(validate_locally=False)
    session = client.open_session(job_class="development")
    blocker = client.submit(analog_sequence(2), 2000)  # 20 s on the QPU: canceled below
    wait_running(client, blocker.job_id)
    job = client.submit(analog_sequence(2), 10, session_id=session)

    status = client.control(CommandName.STATUS).status
    assert status is not None
    (mine,) = [s for s in status.sessions if s.session_id == session]
    assert (mine.phase, mine.waiting) == (SessionPhase.QUEUED, 1)
    text = _cli(owners, "status")
    assert re.search(rf"session {session[:8]}\s+guest\s+queued, 1 queued", text), text

    rows = [json.loads(line) for line in _cli(owners, "queue", "--json").splitlines()]
    (row,) = [r for r in rows if r["job_id"] == job.job_id]
    assert (row["session_id"], row["session_phase"]) == (session, "queued")
    table = _cli(owners, "queue")
    assert "session" in table and f"{session[:8]} queued" in table, table

    env = client_env(owners.broker.url, owners.broker.topology.namespace)
    term = TmuxTerminal(tmp_path, [QSCHED, "top", "--interval", "0.5"], env, (80, 24))
    try:
        screen = wait_until(
            lambda: (s := term.capture()) and any(line.startswith("sessions") for line in s) and s,
            "top drawing the sessions line",
            timeout_s=60,
        )
        (line,) = [line for line in screen if line.startswith("sessions")]
        assert re.match(rf"sessions\s+{session[:8]} guest queued 1 queued", line), screen
        assert len(screen) <= 24 and all(len(row) <= 80 for row in screen)
        term.send_keys("q")
        wait_until(lambda: term.exit_code() is not None, "top quitting on q", timeout_s=20)
        assert term.exit_code() == 0
    finally:
        term.close()

    blocker.cancel()
    assert job.result(timeout=60).state is JobState.DONE
    status = client.control(CommandName.STATUS).status
    assert status is not None
    (mine,) = [s for s in status.sessions if s.session_id == session]
    assert mine.phase is SessionPhase.GRACE and mine.runs == 1
    assert mine.left_s is not None and 0 < mine.left_s <= 120
    assert re.search(
        rf"session {session[:8]}\s+guest\s+grace \d+(s|m\d\ds) left", _cli(owners, "status")
    )


def test_a_closed_sessions_events_show_in_history_metrics_and_the_html_timeline(
    owners: OwnerHarness, tmp_path: Path
) -> None:
    """Given a session whose two jobs ran one after the other, then closed, then the history of
    its first job shows the session's opening before the job and its end after (from the owner
    and from the log), the metrics count one explicit session opened, one ended closed and one
    iteration gap, and the HTML timeline draws the session's span as a labelled band."""
    active = owners.start(
        "--backend",
        "synthetic",
        "--shot-rate",
        "100",
        "--policy",
        _policy(tmp_path),
        env=METRICS_ENV,
    )
    url = metrics_url(active)
    client = owners.client(validate_locally=False)
    session = client.open_session(job_class="development")
    first = client.submit(analog_sequence(2), 10, session_id=session)
    assert first.result(timeout=60).state is JobState.DONE
    second = client.submit(analog_sequence(2), 10, session_id=session)
    assert second.result(timeout=60).state is JobState.DONE
    assert "closed" in client.close_session(session)

    for from_log in ((), ("--from", "0")):
        text = _cli(owners, "history", first.job_id, *from_log)
        topics = re.findall(r"^\d\d:\d\d:\d\d\.\d{3}\s+(?:\+[\d.]+s\s+)?(\S+)", text, re.M)
        assert topics == [
            "session.opened",
            "job.accepted",
            "job.started",
            "job.done",
            "session.ended",
        ], text
        assert f"session {session}" in text and f"session {session} ended: closed" in text
        record = json.loads(_cli(owners, "history", first.job_id, "--json", *from_log))
        assert record["session_id"] == session
        assert [e["topic"] for e in record["events"]] == topics

    def counted() -> dict[str, float | None] | None:
        samples = scrape(url)
        found = {
            "opened": value(samples, "qsched_sessions_opened_total", kind="explicit"),
            "implicit": value(samples, "qsched_sessions_opened_total", kind="implicit"),
            "closed": value(samples, "qsched_sessions_ended_total", reason="closed"),
            "idle": value(samples, "qsched_sessions_ended_total", reason="idle"),
            "gaps": value(samples, "qsched_session_iteration_gap_seconds_count"),
        }
        return found if found["closed"] == 1.0 else None

    found = wait_until(counted, "the session's end in the metrics", timeout_s=30)
    assert found == {"opened": 1.0, "implicit": 0.0, "closed": 1.0, "idle": 0.0, "gaps": 1.0}

    page = tmp_path / "timeline.html"
    _cli(owners, "events", "export", "--format", "html", "-o", str(page))
    dom = dump_dom(page, tmp_path)
    bands = re.findall(rf'<svg class="session session-ended" data-session="{session}"', dom)
    assert len(bands) == 1, dom[-3000:]
    assert f"session {session[:8]} guest" in dom  # the track's label
    assert "ended: closed" in dom  # the band's hover tip
    pixels = Image.open(screenshot(page, tmp_path, tmp_path / "shot.png")).convert("RGB")
    band = tuple(round(255 * (1 - SESSION_ALPHA) + c * SESSION_ALPHA) for c in SESSION_RGB)
    drawn = sum(
        n
        for n, rgb in pixels.getcolors(maxcolors=1 << 20) or []
        if all(abs(a - b) <= 3 for a, b in zip(rgb, band, strict=True))
    )
    assert drawn > 100, f"no session band drawn (looked for {band})"
