"""A standby started with another policy file than the active owner's (issue 19, untried fault).

Decision (docs/design.md, "Which policy is in force"): the log's policy wins. Given an active
owner whose file limits each user to 3 waiting jobs, and a standby whose file has no limit, when
the active owner is killed, the standby takes over with the limit still in force (a 4th waiting
job is refused, BACKLOG_LIMIT) and says in its log that its file differs; the policy changes only
when an operator asks (`reload-policy`, logged with the text it loaded): then a 4th waiting job
is accepted. Ends with the invariant checker.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas import CommandName, ErrorCode, JobState
from tests.conftest import OwnerHarness
from tests.integration.test_owner import events
from tests.support.invariants import check
from tests.support.owners import wait_active, wait_for_log
from tests.support.reliability import record
from tests.support.sequences import analog_sequence

pytestmark = [pytest.mark.chaos, pytest.mark.reliability]

ENV = {"QSCHED_OWNER__LEASE_RETRY_S": "0.2"}
LIMITED = "max_waiting_per_user = 3\n"
UNLIMITED = "aging_step_s = 600.0\n"


@pytest.mark.timeout(300)
def test_a_standby_with_another_policy_file_keeps_the_logs_policy_until_reloaded(
    owners: OwnerHarness, tmp_path: Path
) -> None:
    limited, unlimited = tmp_path / "limited.toml", tmp_path / "unlimited.toml"
    limited.write_text(LIMITED)
    unlimited.write_text(UNLIMITED)
    args = ("--backend", "synthetic")
    active = owners.start(*args, "--policy", str(limited), env=ENV)
    client = owners.client()
    first = client.control(CommandName.STATUS).status.owner_id
    standby = owners.start(*args, "--policy", str(unlimited), env=ENV, wait=False)
    wait_for_log(standby, "standby: another owner holds", timeout_s=60)
    active.kill()
    while (status := wait_active(client, timeout_s=60).status) is None or status.owner_id == first:
        client.poll(0.1)
    wait_for_log(standby, "differs from the policy in force in the log", timeout_s=30)
    assert client.control(CommandName.PAUSE).ok
    held = [client.submit(analog_sequence(2), 10) for _ in range(4)]
    refused = held[3].result(timeout=60)  # the log's limit (3 waiting) is still in force
    reply = client.control(CommandName.RELOAD_POLICY)
    assert reply.ok, reply.message
    after = client.submit(analog_sequence(2), 10)  # 4th waiting job: no limit any more
    assert client.control(CommandName.RESUME).ok
    results = [h.result(timeout=60) for h in [*held[:3], after]] + [refused]
    log = events(owners)
    sent = [h.job_id for h in [*held, after]]
    verdict = check(log, sent, {r.job_id: r for r in results})
    activations = [e for e in log if e.topic == "owner.activated"]
    reloads = [e for e in log if e.topic == "control.reload-policy"]
    record(
        "standby with another policy file",
        verdict=verdict,
        owner_crashes=int(standby.process.poll() is not None),
        note=(
            f"{len(activations)} activations, policies {[e.data.get('policy') for e in activations]}; "
            f"the 4th waiting job before the reload: {refused.state.value}; after: "
            f"{results[3].state.value}"
        ),
    )
    assert verdict.ok, verdict.problems
    assert [e.data.get("policy") for e in activations] == [LIMITED, LIMITED]
    assert refused.state is JobState.REJECTED and refused.error is not None
    assert refused.error.code is ErrorCode.BACKLOG_LIMIT, refused.error
    assert [r.state for r in results[:4]] == [JobState.DONE] * 4
    assert [e.data.get("policy") for e in reloads] == [UNLIMITED]
