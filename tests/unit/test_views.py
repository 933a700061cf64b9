"""What `qsched status` prints in a terminal: the state first, never a wrapped line."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console

from producers.views import print_status
from schemas.enums import Mode, QPUState
from schemas.reports import RunningJob, StatusReport


def _render(status: StatusReport, width: int) -> list[str]:
    console = Console(width=width, record=True, force_terminal=False)
    with console.capture() as captured:
        print_status(status, console)
    return captured.get().splitlines()


def test_a_down_backend_and_held_jobs_are_shown_within_80_columns() -> None:
    job_id = "1a2b3c4d-0000-4000-8000-000000000000"
    status = StatusReport(
        owner_id="node7.example.org:12345:abcdef",
        qpu_state=QPUState.DOWN,
        mode=Mode.MAINTENANCE,
        mode_message="laser realignment until 14:00, " + "then a long explanation " * 5,
        running=RunningJob(
            job_id=job_id,
            job_class="production",
            shots=200,
            started_at=datetime(2026, 1, 1, 12, 0, tzinfo=UTC),
            user="alice",
        ),
        queue_depth={"calibration": 0, "production": 3, "development": 12},
        held={"development": 2},
        backend="qpu-api",
        held_reasons={job_id: "held: maintenance mode does not run development jobs"},
        last_decision="held: maintenance mode does not run development jobs " + "x" * 100,
    )
    lines = _render(status, 80)
    assert lines[0].startswith("QPU DOWN  mode maintenance  backend qpu-api")
    assert "the QPU backend is down: jobs wait until it is back" in lines
    assert "  1a2b3c4d  maintenance mode does not run development jobs" in lines
    assert any(line.startswith("running 1a2b3c4d  production  200 shots") for line in lines)
    assert all(len(line) <= 80 for line in lines), [ln for ln in lines if len(ln) > 80]
    assert len(_render(status, 120)) == len(lines), "no line wraps at 120 columns either"
