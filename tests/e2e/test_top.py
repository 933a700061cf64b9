"""`qsched top` in a real 80x24 terminal (tmux) against a real owner running jobs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import OwnerHarness
from tests.e2e.terminal import TmuxTerminal
from tests.support.environment import client_env
from tests.support.owners import QSCHED, run_qsched, wait_running
from tests.support.sequences import analog_sequence
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

WIDTH, HEIGHT = 80, 24


def _shots_done(screen: list[str]) -> int | None:
    found = re.search(r"(\d+)/2000 shots", "\n".join(screen))
    return int(found.group(1)) if found else None


def test_top_in_80x24_shows_the_run_its_progress_and_the_next_jobs_then_q_and_ctrl_c_quit_cleanly(
    owners: OwnerHarness, tmp_path: Path
) -> None:
    """Given a long job running and three waiting, `top` in an 80x24 tmux pane draws the QPU line,
    the running job with its shots moving, the next jobs in policy order (higher priority first)
    with ETAs, the waiting counts and the last events, without a wrapped line; q quits with 0 and
    the terminal back in its modes; Ctrl-C quits the same way; `--once` prints one frame."""
    owners.start("--backend", "synthetic", "--shot-rate", "100")
    client = owners.client()
    running = client.submit(analog_sequence(2), 2000, job_class="development")  # 20 s
    wait_running(client, running.job_id)
    waiting = [
        client.submit(analog_sequence(2), 10, job_class="development", priority=p)
        for p in (1, 5, 9)
    ]
    env = client_env(owners.broker.url, owners.broker.topology.namespace)
    term = TmuxTerminal(tmp_path, [QSCHED, "top", "--interval", "0.5"], env, (WIDTH, HEIGHT))
    try:
        first = wait_until(
            lambda: (
                (s := term.capture())
                and _shots_done(s) is not None
                and "job.started" in "\n".join(s)
                and s
            ),
            "top drawing the running job and the events",
            timeout_s=60,
        )
        assert first[0].startswith("qsched top"), first
        assert first[1].startswith("QPU RUNNING  mode "), first
        assert first[2].startswith(f"running {running.job_id[:8]} development"), first
        assert len(first) <= HEIGHT and all(len(line) <= WIDTH for line in first)
        # nothing wrapped: below the events rule every row is one event line, up to the bottom
        events = first[next(i for i, line in enumerate(first) if line.startswith("last events")) :]
        shown = [line for line in events[1:] if line]
        assert shown and all(re.match(r"^\d\d:\d\d:\d\d [a-z]", line) for line in shown), first
        rows = [line.split() for line in first if re.match(r"^\s*[1-3] ", line)]
        assert [r[1] for r in rows] == [w.job_id[:8] for w in reversed(waiting)], first
        assert [r[4] for r in rows] == ["9", "5", "1"] and all(
            re.match(r"\d+s|\d+m", r[-1]) for r in rows
        )
        assert any(line.startswith("classes") and "development 3" in line for line in first)
        before = _shots_done(first) or 0
        wait_until(
            lambda: (_shots_done(term.capture()) or 0) > before,
            "the progress bar moving",
            timeout_s=30,
        )
        term.send_keys("q")
        wait_until(lambda: term.exit_code() is not None, "top quitting on q", timeout_s=20)
        assert term.exit_code() == 0
        modes = term.stty_after().split()
        assert "icanon" in modes and "echo" in modes  # cbreak mode undone
    finally:
        term.close()

    interrupted = TmuxTerminal(tmp_path, [QSCHED, "top"], env, (WIDTH, HEIGHT))
    try:
        wait_until(lambda: any("QPU" in line for line in interrupted.capture()), "top drawn", 60)
        interrupted.send_keys("C-c")
        wait_until(lambda: interrupted.exit_code() is not None, "top quitting on Ctrl-C", 20)
        assert interrupted.exit_code() == 0
        assert "icanon" in interrupted.stty_after().split()
    finally:
        interrupted.close()

    once = run_qsched(owners.broker.url, owners.broker.topology.namespace, "top", "--once")
    assert once.returncode == 0, once.stderr
    lines = once.stdout.splitlines()
    assert lines[1].startswith("QPU RUNNING") and len(lines) <= HEIGHT
    assert all(len(line) <= WIDTH for line in lines)
    assert running.job_id[:8] in once.stdout
