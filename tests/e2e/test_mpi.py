"""Real `mpiexec` runs of the sweep example, in both submission modes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import OwnerHarness
from tests.integration.test_owner import events
from tests.support.environment import client_env, run_group

pytestmark = pytest.mark.e2e
EXAMPLE = Path(__file__).parents[2] / "examples" / "mpi_sweep.py"
MPIEXEC = str(Path(sys.executable).with_name("mpiexec"))


@pytest.mark.parametrize(
    ("mode", "connections"),
    [("rank", 4), pytest.param("node", 1, marks=pytest.mark.slow)],  # node: the slow tier
)
def test_mpiexec_4_ranks_each_get_their_own_results(
    owners: OwnerHarness, mode: str, connections: int
) -> None:
    owners.start("--backend", "emulator")
    env = client_env(owners.broker.url, owners.broker.topology.namespace)
    done = run_group(
        [
            MPIEXEC,
            "-n",
            "4",
            sys.executable,
            str(EXAMPLE),
            "--shots",
            "60",
            "--jobs-per-rank",
            "2",
            "--mode",
            mode,
            "--json",
        ],
        env,
        timeout_s=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 8
    assert all(r["state"] == "DONE" and r["shots"] == 60 for r in rows)
    assert {r["connections"] for r in rows} == {connections}
    submitted_by = {
        e.job_id: e.data["job"].get("session_id")
        for e in events(owners)
        if e.topic == "job.accepted"
    }
    for row in rows:  # the result a rank got back is for a job that rank submitted
        assert submitted_by[row["job_id"]] == f"slurm-local-rank{row['rank']}"
    assert sorted(r["rank"] for r in rows) == [0, 0, 1, 1, 2, 2, 3, 3]
