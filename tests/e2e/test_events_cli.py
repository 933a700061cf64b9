"""`qsched events tail|export` and `qsched history` as processes, against a real owner's log."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import threading
from pathlib import Path

import pytest
from PIL import Image

from consumers.tools.eventlog.html import PERIOD_COLOURS, STATE_COLOURS
from schemas import CommandName, Event, JobState
from tests.conftest import OwnerHarness
from tests.e2e.chromium import dump_dom, screenshot
from tests.integration.test_owner import events
from tests.support.owners import QSCHED
from tests.support.sequences import analog_sequence
from tests.support.trace_event_format import violations

pytestmark = pytest.mark.e2e


def _env(owners: OwnerHarness) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("QSCHED_")} | {
        "QSCHED_AMQP_URL": owners.broker.url,
        "QSCHED_NAMESPACE": owners.broker.topology.namespace,
    }


def _qsched(owners: OwnerHarness, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [QSCHED, *args], env=_env(owners), capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.fixture
def history(owners: OwnerHarness) -> list[Event]:
    """A finished workload: a pause and resume, jobs in two classes, one canceled while queued."""
    owners.start("--backend", "synthetic", "--shot-rate", "2000")
    client = owners.client()
    assert client.control(CommandName.PAUSE).ok
    handles = [
        client.submit(analog_sequence(2), 40, job_class=job_class)
        for job_class in ("development", "production", "development", "production")
    ]
    canceled = client.submit(analog_sequence(2), 40, job_class="development")
    assert client.control(CommandName.CANCEL, job_id=canceled.job_id).ok
    assert client.control(CommandName.RESUME).ok
    assert all(h.result(timeout=60).state is JobState.DONE for h in handles)
    assert canceled.result(timeout=60).state is JobState.CANCELED
    return events(owners)


def test_export_jsonl_is_the_log_up_to_now_with_offsets(
    owners: OwnerHarness, history: list[Event], tmp_path: Path
) -> None:
    out = tmp_path / "log.jsonl"
    _qsched(owners, "events", "export", "--format", "jsonl", "-o", str(out))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    logged = [e.event_id for e in events(owners)]
    assert [r["event_id"] for r in rows] == logged[: len(rows)]
    assert len(rows) >= len(history)
    # a record may hold several events (an intake group): they share its offset
    offsets = [r["offset"] for r in rows]
    assert offsets == sorted(offsets) and set(offsets) == set(range(offsets[-1] + 1))
    middle = _qsched(
        owners, "events", "export", "--from", "3", "--to", "5", "-o", "-"
    ).stdout.splitlines()
    expected = [r["event_id"] for r in rows if 3 <= r["offset"] <= 5]
    assert [json.loads(line)["event_id"] for line in middle] == expected
    assert sorted({json.loads(line)["offset"] for line in middle}) == [3, 4, 5]


def test_html_export_draws_one_qpu_bar_per_run_in_the_log(
    owners: OwnerHarness, history: list[Event], tmp_path: Path
) -> None:
    page = tmp_path / "timeline.html"
    _qsched(owners, "events", "export", "--format", "html", "-o", str(page))
    dom = dump_dom(page, tmp_path)
    runs = [e for e in events(owners) if e.topic == "job.started"]
    assert len(runs) == 4
    assert len(re.findall(r'<rect class="bar qpu s-DONE"', dom)) == len(runs)
    assert len(re.findall(r'<rect class="period p-pause"', dom)) == 1
    assert all(run.job_id in dom for run in runs)
    pixels = Image.open(screenshot(page, tmp_path, tmp_path / "shot.png")).convert("RGB")
    colours = dict((c, n) for n, c in pixels.getcolors(maxcolors=1 << 20) or [])
    assert (
        colours.get(_rgb(STATE_COLOURS["DONE"]), 0) > 4 * 16
    )  # bars really drawn, not just in the DOM
    assert colours.get(_rgb(PERIOD_COLOURS["pause"]), 0) > 0


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def test_perfetto_export_of_the_log_is_well_formed_with_a_slice_per_run(
    owners: OwnerHarness, history: list[Event], tmp_path: Path
) -> None:
    out = tmp_path / "trace.json"
    _qsched(owners, "events", "export", "--format", "perfetto", "-o", str(out))
    trace = json.loads(out.read_text())
    assert violations(trace) == []
    runs = [e for e in trace["traceEvents"] if e.get("cat") == "run"]
    started = [e.job_id for e in events(owners) if e.topic == "job.started"]
    assert [r["args"]["job_id"] for r in runs] == started
    assert sum(1 for e in trace["traceEvents"] if e["ph"] == "s") == len(started)


def test_history_of_a_job_prefix_shows_its_events_in_order_with_gaps_and_reasons(
    owners: OwnerHarness, history: list[Event]
) -> None:
    job = next(e for e in history if e.topic == "job.started")
    assert job.job_id is not None
    text = _qsched(owners, "history", job.job_id[:8]).stdout
    assert text.startswith(f"job {job.job_id}")
    topics = re.findall(r"^\d\d:\d\d:\d\d\.\d{3}\s+(?:\+[\d.]+s\s+)?(job\.\w+)", text, re.M)
    assert topics == ["job.accepted", "job.started", "job.done"]
    assert len(re.findall(r"\+\d+\.\d{3}s", text)) == 2
    assert f"why: {job.reason}" in text
    record = json.loads(_qsched(owners, "history", job.job_id, "--json").stdout)
    assert record["final_state"] == "DONE"
    assert [e["topic"] for e in record["events"]] == topics
    five = _qsched(owners, "history", job.job_id[:5])  # as every command: the owner resolves it
    assert five.stdout.startswith(f"job {job.job_id}"), five.stderr
    short = subprocess.run(
        [QSCHED, "history", job.job_id[:3]], env=_env(owners), capture_output=True, text=True
    )
    assert short.returncode == 2 and "at least 4 characters" in short.stderr  # usage error


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_tail_filters_and_follow_prints_new_events_as_they_come(
    owners: OwnerHarness, history: list[Event]
) -> None:
    past = _qsched(
        owners,
        "events",
        "tail",
        "-n",
        "100",
        "--class",
        "development",
        "--topic",
        "job.*",
        "--json",
    ).stdout.splitlines()
    rows = [json.loads(line) for line in past]
    development = {e.job_id for e in history if e.job_class == "development"}
    assert rows and {r["job_id"] for r in rows} == development
    assert all(r["topic"].startswith("job.") for r in rows)
    follower = subprocess.Popen(
        [QSCHED, "events", "tail", "-f", "-n", "0", "--topic", "job.done"],
        env=_env(owners),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in follower.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        client = owners.client()
        while True:  # the follower attaches after its start; submit until it sees one
            handle = client.submit(analog_sequence(2), 20, job_class="production")
            assert handle.result(timeout=60).state is JobState.DONE
            try:
                line = lines.get(timeout=15)
                break
            except queue.Empty:
                assert follower.poll() is None, follower.stderr.read()  # type: ignore[union-attr]
        assert "job.done" in line and handle.job_id[:8] in line
        assert "20/20 shots" in line
    finally:
        follower.terminate()
        follower.wait(timeout=10)
