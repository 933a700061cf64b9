"""Session grace against a real owner: scoped to the session's user and bounded by the policy
(issue 19, finding 6: a user's 8 session jobs held the QPU while another user who queued first
waited, and a third user copying the session id rode the grace)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from schemas.events import Topic
from schemas.jobs import JobRequest
from tests.support.hostile import confirmed_channel, log_events, publish_job, wait_until
from tests.support.sequences import analog_sequence

pytestmark = pytest.mark.integration

POLICY = 'gateway_users = ["guest"]\nsession_grace_s = 60\nsession_max_consecutive = 2\n'
ON_BEHALF_OF = "x-on-behalf-of"  # the guest acts for alice, bob, carol as a gateway does


def test_a_session_gets_a_bounded_turn_and_a_stranger_naming_it_gets_no_grace(
    owners: Any, tmp_path: Path
) -> None:
    """Given a running job, then alice's 4 jobs of session `loop`, carol's job, and bob's job
    naming alice's session, queued in that order; when the QPU frees, then alice runs twice
    (her turn: ``session_max_consecutive = 2``), carol and bob run by fair share (bob's job got
    no grace from the session he named, and the log says so), then alice's next turn."""
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(POLICY)
    owners.start("--backend", "synthetic", "--shot-rate", "100", "--policy", str(policy_file))
    topology = owners.broker.topology
    channel = confirmed_channel(owners.broker.url)

    def submit(user: str, shots: int = 5, session_id: str | None = None) -> str:
        job = JobRequest(
            job_class="production",
            shots=shots,
            sequence=analog_sequence(2),
            session_id=session_id,
        )
        publish_job(channel, topology, job, headers={ON_BEHALF_OF: user})
        return job.job_id

    blocker = submit("zed", shots=150)  # ~1.5 s on the QPU while the others queue
    alice = [submit("alice", session_id="loop") for _ in range(4)]
    carol = submit("carol")
    bob = submit("bob", session_id="loop")
    expected = [blocker, *alice[:2], carol, bob, *alice[2:]]

    def done() -> list[str] | None:
        events = log_events(channel, topology)
        finished = {e.job_id for e in events if e.topic == Topic.JOB_DONE}
        if not finished.issuperset(expected):
            return None
        return [e.job_id or "" for e in events if e.topic == Topic.JOB_STARTED]

    started = wait_until(done, 60, "all seven jobs DONE")
    assert started == expected
    noted = [
        e
        for e in log_events(channel, topology)
        if e.topic == Topic.JOB_CONTEXT_MISMATCH and e.job_id == bob
    ]
    assert len(noted) == 1 and "session loop" in (noted[0].reason or "")
    assert "another user's" in (noted[0].reason or "")
