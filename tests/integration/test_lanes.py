"""Emulator lanes through the real owner: development work completes on lanes while the QPU
runs a long production job or is in maintenance, QPU-only work waits, results say where they
ran, lanes show in metrics and `qsched top`, and killing the owner mid-run loses no lane job."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas import CommandName, JobState
from schemas.enums import Mode
from tests.conftest import OwnerHarness
from tests.integration.test_metrics import METRICS_ENV, metrics_url, scrape, value
from tests.support.owners import run_qsched, wait_running
from tests.support.sequences import analog_sequence
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

SEQ = analog_sequence(2)
POLICY = """
[lanes]
emulators = 2
shot_rate_hz = 50
[classes.calibration]
rank = 0
preempts = ["production", "development"]
calibrates = true
[classes.production]
rank = 1
preempts = ["development"]
modes = ["production", "development"]
[classes.development]
rank = 2
modes = ["production", "development"]
placement = { production = "either", development = "either", maintenance = "emulator" }
"""


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_lanes_run_development_beside_a_busy_qpu_and_in_maintenance_and_survive_a_kill(
    owners: OwnerHarness, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    args = ("--policy", str(policy), "--backend", "synthetic", "--shot-rate", "20")
    owner = owners.start(*args, env=METRICS_ENV)
    client = owners.client()
    production = client.submit(SEQ, 2000, job_class="production")  # 100 s on the QPU
    wait_running(client, production.job_id)

    development = [client.submit(SEQ, 10, job_class="development") for _ in range(2)]
    for handle in development:
        result = handle.result(timeout=120)
        assert result.state is JobState.DONE and sum(result.counts.values()) == 10
        assert result.lane in ("emulator-1", "emulator-2") and result.backend == "emulator"
        assert result.specs is not None and len(result.specs) == 12 and result.epoch == 0
    status = client.control(CommandName.STATUS).status
    assert status.running is not None and status.running.job_id == production.job_id
    assert set(status.lanes) == {"emulator-1", "emulator-2"}

    assert client.control(CommandName.MODE, mode=Mode.MAINTENANCE, message="laser").ok
    waits = client.submit(SEQ, 10, job_class="production")
    insists = client.submit(SEQ, 10, job_class="development", require_qpu=True)
    flows = client.submit(SEQ, 10, job_class="development")
    assert flows.result(timeout=120).lane is not None
    held = client.control(CommandName.STATUS).status.held_reasons
    assert held[waits.job_id] == "held: maintenance mode does not run production jobs"
    assert (
        held[insists.job_id]
        == "held: maintenance mode runs development jobs on emulator lanes only"
    )

    long_run = client.submit(SEQ, 300, job_class="development")  # 6 s on a lane
    lane = wait_until(
        lambda: next(
            (
                name
                for name, job in client.control(CommandName.STATUS).status.lanes.items()
                if job is not None and job.job_id == long_run.job_id
            ),
            None,
        ),
        "the long development job on a lane",
        120.0,
        step=lambda: client.poll(0.2),
    )
    samples = wait_until(  # the gauges are read from a state snapshot at most 1 s old
        lambda: (
            found
            if value(found := scrape(metrics_url(owner)), "qsched_lane_busy", lane=lane) == 1.0
            else None
        ),
        "the lane's busy gauge",
        10.0,
    )
    runs = [
        value(samples, "qsched_lane_runs_total", lane=n, job_class="development") or 0
        for n in ("emulator-1", "emulator-2")
    ]
    assert sum(runs) == 4  # two beside production, one in maintenance, the long one
    top = run_qsched(owners.broker.url, owners.broker.topology.namespace, "top", "--once")
    assert top.returncode == 0, top.stderr
    rows = [line for line in top.stdout.splitlines() if line.startswith(lane)]
    assert rows and rows[0].startswith(f"{lane} {long_run.job_id[:8]} development"), top.stdout
    owner.kill()
    owners.start(*args)
    result = long_run.result(timeout=180)
    assert result.state is JobState.DONE and sum(result.counts.values()) == 300
    assert result.attempts == 2 and result.lane is not None
