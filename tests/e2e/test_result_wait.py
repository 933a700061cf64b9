"""`qsched result ID --wait` in a real terminal (tmux): position and ETA while the job waits,
then the shots measured while it runs (progress the owner pushes to the waiter), then the
result the owner pushes when it ends."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable

import pytest

from schemas.enums import CommandName
from tests.conftest import OwnerHarness
from tests.support.environment import CHILD_REPLY_EXPIRES_MS
from tests.support.owners import QSCHED, wait_running
from tests.support.sequences import analog_sequence
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
SHOTS_DONE = re.compile(r"\b[1-9][0-9]*/100 shots")


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_result_wait_in_a_terminal_shows_position_eta_then_shots_then_the_result(
    owners: OwnerHarness,
) -> None:
    url, ns = owners.broker.url, owners.broker.topology.namespace
    owners.start(
        "--backend",
        "synthetic",
        "--shot-rate",
        "20",
        env={"QSCHED_OWNER__PROGRESS_EVERY_SHOTS": "10"},
    )
    client = owners.client(validate_locally=False)
    ahead = client.submit(analog_sequence(2), 1000, job_class="development")  # holds the QPU
    wait_running(client, ahead.job_id, timeout_s=60)
    job = client.submit(analog_sequence(2), 100, job_class="development")  # 5 s once it starts
    session = f"qsched-wait-{ns}"
    command = (
        f"env -i PATH=/usr/bin:/bin TERM=xterm QSCHED_AMQP_URL='{url}' QSCHED_NAMESPACE={ns} "
        f"QSCHED_BROKER__REPLY_EXPIRES_MS={CHILD_REPLY_EXPIRES_MS} "
        f"{QSCHED} result {job.job_id[:8]} --wait; tmux wait-for -S {session}-done; sleep 600"
    )
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "24", command], check=True
    )

    def screen() -> str:
        return subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", session],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def screen_if(shows: Callable[[str], object]) -> str | None:
        shown = screen()
        return shown if shows(shown) else None

    try:
        waiting = wait_until(
            lambda: screen_if(lambda s: "position 1" in s),
            "the bar showing position 1",
            timeout_s=60,
            step=lambda: client.poll(0.2),
        )
        assert f"job {job.job_id[:8]} QUEUED" in waiting and "starts in ~" in waiting, waiting
        assert client.control(CommandName.CANCEL, job_id=ahead.job_id, timeout=10).ok
        running = wait_until(
            lambda: screen_if(SHOTS_DONE.search),
            "the bar counting the shots the owner pushes while the job runs",
            timeout_s=60,
            step=lambda: client.poll(0.2),
        )
        assert f"job {job.job_id[:8]} RUNNING" in running, running
        subprocess.run(["tmux", "wait-for", f"{session}-done"], timeout=90, check=True)
        final = screen()
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    assert f"{job.job_id} DONE (development, 100/100 shots)" in final, final
