"""Per-job control sent by a submitter (not an operator) to a real owner: the policy's limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas import CommandName, ErrorCode, JobState
from tests.conftest import OwnerHarness
from tests.integration.test_owner import events
from tests.support.sequences import analog_sequence

pytestmark = pytest.mark.integration


def test_a_submitter_holds_lowers_and_releases_its_own_job_but_cannot_raise_it(
    owners: OwnerHarness, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('operators = ["ops"]\n')  # guest, the test's broker user, only submits
    owners.start("--backend", "synthetic", "--shot-rate", "100", "--policy", str(policy))
    client = owners.client()
    first = client.submit(analog_sequence(2), 500, job_class="development")  # ~5 s: job waits
    job = client.submit(analog_sequence(2), 10, priority=5, job_class="development")
    assert not client.control(CommandName.PAUSE).ok  # not an operator
    held = client.control(CommandName.HOLD, job_id=job.job_id)
    assert held.ok and "user hold" in held.message, held.message
    shown = client.control(CommandName.SHOW, job_id=job.job_id).job
    assert shown is not None and shown.hold_kind == "user" and shown.position is None
    raised = client.control(CommandName.UPDATE, job_id=job.job_id, priority=9)
    assert not raised.ok and raised.error is not None
    assert raised.error.code is ErrorCode.NOT_AUTHORISED
    lowered = client.control(CommandName.UPDATE, job_id=job.job_id, priority=1)
    assert lowered.ok, lowered.message
    assert client.control(CommandName.RELEASE, job_id=job.job_id).ok
    assert first.result(timeout=60).state is JobState.DONE
    result = job.result(timeout=60)
    assert result.state is JobState.DONE
    topics = [e.topic for e in events(owners) if e.job_id == job.job_id]
    assert topics.index("job.held") < topics.index("job.updated") < topics.index("job.released")
    assert topics.index("job.released") < topics.index("job.started")
    refused = [e for e in events(owners) if e.topic == "control.update" and e.data["ok"] is False]
    assert len(refused) == 1 and refused[0].user == "guest"
