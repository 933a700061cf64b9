"""kill -9 of the active owner while its job runs on the Pasqal QPU API (issue 12, item 5).

The next owner must adopt the API job still RUNNING (found by the qsched job id in its context)
and follow it to its end: the API sees exactly one submission, the result reaches the client,
and the invariant checker finds nothing in the log.
"""

from __future__ import annotations

import pytest

from schemas import CommandName, JobState
from tests.conftest import OwnerHarness
from tests.integration.test_owner import events
from tests.support.invariants import check
from tests.support.owners import wait_active
from tests.support.qpu_api import qpu_api_simulator, sim_stats
from tests.support.reliability import record
from tests.support.sequences import analog_sequence
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.reliability]

# 15 s on the simulated QPU: still RUNNING when the standby adopts it on a loaded machine (at
# 600 shots the job had once ended before the takeover, and the adoption found it DONE).
SHOTS = 1500


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
@pytest.mark.timeout(300)
def test_kill_9_mid_job_the_next_owner_adopts_the_running_api_job_instead_of_resubmitting(
    owners: OwnerHarness,
) -> None:
    with qpu_api_simulator(shot_rate_hz=100) as api:  # SHOTS / 100 s on the "QPU"
        env = {
            "QSCHED_OWNER__QPU_API_URL": api,
            "QSCHED_OWNER__QPU_API_POLL_S": "0.05",
            "QSCHED_OWNER__LEASE_RETRY_S": "0.2",
        }
        active = owners.start("--backend", "qpu-api", env=env)
        client = owners.client()
        first_owner = client.control(CommandName.STATUS).status.owner_id
        owners.start("--backend", "qpu-api", env=env, wait=False)
        job = client.submit(analog_sequence(2), SHOTS)
        wait_until(
            lambda: [j["status"] for j in sim_stats(api)["jobs"]] == ["RUNNING"],
            "the job RUNNING on the QPU API",
            60,
            step=lambda: client.poll(0.1),
        )
        active.kill()
        wait_until(
            lambda: (
                (s := wait_active(client, timeout_s=20).status) is not None
                and s.owner_id != first_owner
            ),
            "the standby active",
            60,
        )
        result = job.result(timeout=120)
        stats = sim_stats(api)
        everything = events(owners)
        verdict = check(everything, [job.job_id], {job.job_id: result})
        record(
            "qpu-api owner kill -9 mid-job",
            verdict=verdict,
            duplicated=verdict.duplicated + stats["submissions"] - 1,
            note=(
                f"the QPU API saw {stats['submissions']} submission(s) of the job; the next "
                f"owner's notes: {[e.reason for e in everything if e.topic == 'job.note']}"
            ),
        )
        assert verdict.ok, verdict.problems
        assert result.state is JobState.DONE and sum(result.counts.values()) == SHOTS
        assert stats["submissions"] == 1, stats["jobs"]
        log = [e for e in everything if e.job_id == job.job_id]
        assert [e.topic for e in log].count("job.requeued") == 1
        notes = [e.reason or "" for e in log if e.topic == "job.note"]
        assert any("adopted QPU API job 1 (RUNNING)" in n for n in notes), notes
        assert [e.topic for e in log if e.result is not None] == ["job.done"]
