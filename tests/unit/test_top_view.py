"""`qsched top`'s frame drawn at 80x24 and smaller: nothing wraps, nothing runs off the screen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console

from producers.top_view import Frame, duration, render
from schemas.enums import Mode, QPUState
from schemas.envelope import Event
from schemas.reports import QueueEntry, RunningJob, StatusReport

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def frame(waiting: int, long_text: bool = False) -> Frame:
    name = "x" * 60 if long_text else "alice"
    status = StatusReport(
        owner_id="host:1:abcdef",
        qpu_state=QPUState.RUNNING,
        mode=Mode.PRODUCTION,
        mode_message="laser realignment " * 8 if long_text else None,
        running=RunningJob(
            job_id="3f2a9c1e-0000",
            job_class="production",
            shots=1000,
            started_at=NOW - timedelta(seconds=75),
            user=name,
            shots_done=620,
        ),
        queue_depth={"production": waiting, "development": 2},
        epoch=3,
        backend="emulator",
        calibration_valid_until=NOW + timedelta(minutes=12, seconds=5),
        waiting_by_account={"physics": waiting, "": 2},
    )
    queue = [
        QueueEntry(
            job_id=f"job{i:05d}-rest",
            job_class="production",
            user=name,
            priority=5,
            shots=100,
            submitted_at=NOW,
            position=i + 1,
            eta_s=30.0 * i,
        )
        for i in range(waiting)
    ]
    events = [
        Event(
            topic="job.started", at=NOW, job_id="3f2a9c1e", job_class="production", reason=name * 3
        )
    ] * 5
    return Frame(at=NOW, status=status, queue=queue, events=events)


def draw(f: Frame, width: int = 80, height: int = 24) -> list[str]:
    console = Console(width=width, height=height, record=True, force_terminal=True)
    console.print(render(f, width, height))
    return console.export_text().rstrip("\n").split("\n")


@pytest.mark.parametrize(("width", "height"), [(80, 24), (100, 40), (80, 16)])
@pytest.mark.parametrize("long_text", [False, True])
def test_a_frame_with_a_long_backlog_fits_the_terminal_without_wrapping(
    width: int, height: int, long_text: bool
) -> None:
    lines = draw(frame(200, long_text), width, height)
    assert len(lines) <= height - 1, "\n".join(lines)
    assert all(len(line) <= width for line in lines)
    assert lines[0].startswith("qsched top") and lines[1].startswith("QPU RUNNING")
    assert "window 12m05s left" in lines[1]
    running = next(line for line in lines if line.startswith("running 3f2a9c1e"))
    assert "620/1000 shots" in running and "1m15s" in running
    assert sum(1 for line in lines if line.lstrip().startswith(("1 ", "2 "))) == 2
    assert any(line.startswith("accounts") and "physics 200" in line for line in lines)


def test_an_80x24_frame_gives_the_queue_the_rows_the_rest_leaves() -> None:
    lines = draw(frame(200))
    positions = [line.split()[0] for line in lines if line[:3].strip().isdigit()]
    assert positions == [str(i) for i in range(1, len(positions) + 1)]
    assert len(positions) >= 8


def test_a_submitter_without_the_event_log_sees_a_note_in_the_events_place() -> None:
    f = frame(200)
    f.events_note = "the event log is for operators only"
    lines = draw(f)
    assert len(lines) <= 23 and lines[-6].startswith("last events")
    assert lines[-5] == "the event log is for operators only"


def test_no_owner_is_one_clear_line_and_durations_read_short() -> None:
    lines = draw(Frame(at=NOW, error="no QPU owner answered status within 2 s"))
    assert lines[1] == "no QPU owner answered status within 2 s"
    assert [duration(s) for s in (None, 4.4, 65, 3725)] == ["?", "4s", "1m05s", "1h02m"]


def with_lanes(f: Frame, lanes: int, busy: set[int]) -> Frame:
    """`f` with `lanes` emulator lanes, those numbered in `busy` running a development job."""
    assert f.status is not None
    runs = {
        f"emulator-{i}": RunningJob(
            job_id=f"lane{i:04d}-rest",
            job_class="development",
            shots=200,
            started_at=NOW - timedelta(seconds=9),
            user="bob",
            shots_done=50,
        )
        if i in busy
        else None
        for i in range(1, lanes + 1)
    }
    f.status = f.status.model_copy(update={"lanes": runs})
    return f


def test_each_emulator_lane_has_a_row_with_its_job_or_free_below_the_qpus_run() -> None:
    lines = draw(with_lanes(frame(200), 2, busy={2}))
    assert len(lines) <= 23 and all(len(line) <= 80 for line in lines)
    at = next(i for i, line in enumerate(lines) if line.startswith("running 3f2a9c1e"))
    assert lines[at + 1] == "emulator-1 free"
    assert lines[at + 2].startswith("emulator-2 lane0002 development")
    assert "50/200 shots  9s" in lines[at + 2]
    assert lines[at + 3].startswith("next jobs")


@pytest.mark.parametrize(("width", "height"), [(80, 24), (80, 16)])
def test_many_lanes_take_four_rows_and_the_frame_still_fits(width: int, height: int) -> None:
    lines = draw(with_lanes(frame(200, long_text=True), 12, busy={1, 5, 10, 11}), width, height)
    assert len(lines) <= height - 1 and all(len(line) <= width for line in lines)
    lane_rows = [line for line in lines if line.startswith("emulator-")]
    assert [row.split()[0] for row in lane_rows] == ["emulator-1", "emulator-2", "emulator-3"]
    assert "9 more lanes: 3 busy, 6 free" in lines
    assert any(line.lstrip().startswith("1 ") for line in lines)  # the queue keeps a row


def test_the_open_reservation_and_a_budget_past_warn_at_show_and_the_frame_still_fits() -> None:
    from schemas.budgets import BudgetStatus
    from schemas.reservations import Reservation

    f = frame(200, long_text=True)
    window = Reservation(
        name="chem-day", start=NOW, end=NOW + timedelta(hours=8), accounts=("chem",)
    )
    assert f.status is not None
    f.status = f.status.model_copy(update={"reservations": [window]})
    f.budgets = [
        BudgetStatus(
            account="physics",
            seconds=3600,
            period="month",
            period_start=NOW,
            spent_s=3000,
            left_s=600,
            used=0.8333,
            warn=True,
        )
    ]
    lines = draw(f)
    assert len(lines) <= 23 and all(len(line) <= 80 for line in lines)
    assert any(line.startswith("reservation chem-day: ") for line in lines)
    assert any(line.startswith("budget physics: 600 s left of 3600 s") for line in lines)
