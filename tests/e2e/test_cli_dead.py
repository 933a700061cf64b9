"""`qsched dead list|show|requeue|purge` as real processes against a real owner and broker."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from schemas import ErrorCode, JobState
from tests.conftest import OwnerHarness
from tests.support.owners import run_qsched
from tests.support.sequences import analog_sequence
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

POLICY = """
[classes.production]
rank = 1
[classes.development]
rank = 2
{acl}
"""


def qsched(owners: OwnerHarness, *args: str) -> subprocess.CompletedProcess[str]:
    """`qsched ARGS` on the test's broker and namespace."""
    return run_qsched(owners.broker.url, owners.broker.topology.namespace, *args)


def dead_letters(owners: OwnerHarness, jobs_only: bool = True) -> list[dict[str, object]]:
    """`qsched dead list --json`, one object per dead letter (the jobs: waiting for the owner
    to start left expired `status` commands there too)."""
    listed = qsched(owners, "dead", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    found = [json.loads(line) for line in listed.stdout.splitlines()]
    return [r for r in found if "job" in r or not jobs_only]


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_dead_letters_are_listed_shown_requeued_through_the_owners_checks_and_purged(
    owners: OwnerHarness, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY.format(acl='submitters = ["carol"]'))  # guest may not submit dev
    owners.start("--backend", "synthetic", "--policy", str(policy))
    client = owners.client()
    refused = [client.submit(analog_sequence(2), 10, job_class="development") for _ in range(2)]
    for handle in refused:
        result = handle.result(timeout=30)
        assert result.state is JobState.REJECTED and result.error is not None
        assert result.error.code is ErrorCode.NOT_AUTHORISED
    first, second = (h.job_id for h in refused)
    letters = wait_until(
        lambda: len(found := dead_letters(owners)) == 2 and found, "two dead letters", 30
    )
    record = next(r for r in letters if r["message_id"] == first)
    assert record["code"] == ErrorCode.NOT_AUTHORISED.value and record["user"] == "guest"
    assert record["origin"] == owners.broker.topology.job_queue("development")
    assert record["job"]["shots"] == 10 and "sequence" not in record["job"]  # type: ignore[index]
    shown = qsched(owners, "dead", "show", first[:8])
    assert shown.returncode == 0 and "may not submit development jobs" in shown.stdout

    # requeued while the ACL still refuses guest: checked again as guest's, refused again
    again = qsched(owners, "dead", "requeue", first)
    assert again.returncode == 0, again.stderr
    new_id = re.search(r"requeued as job (\S+) of guest", again.stdout)
    assert new_id is not None, again.stdout
    wait_until(
        lambda: {r["message_id"] for r in dead_letters(owners)} == {second, new_id[1]},
        "the requeued job dead-lettered again under its new id",
        30,
    )

    # after the ACL is lifted, the requeued job runs
    policy.write_text(POLICY.format(acl=""))
    assert qsched(owners, "ctl", "reload-policy").returncode == 0
    requeued = qsched(owners, "dead", "requeue", new_id[1])
    assert requeued.returncode == 0, requeued.stderr
    job_id = re.search(r"requeued as job (\S+)", requeued.stdout)
    assert job_id is not None
    done = qsched(owners, "result", job_id[1], "--wait", "--timeout", "60", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == JobState.DONE.value
    missing = qsched(owners, "dead", "requeue", new_id[1])
    assert missing.returncode == 1 and "no dead letter" in missing.stderr

    # purge needs --yes
    held = len(dead_letters(owners, jobs_only=False))
    assert held >= 1  # the other refused job, and expired commands
    unconfirmed = qsched(owners, "dead", "purge")
    assert unconfirmed.returncode == 2 and f"holds {held} dead letters" in unconfirmed.stderr
    purged = qsched(owners, "dead", "purge", "--yes")
    assert purged.returncode == 0 and f"purged {held}" in purged.stdout
    assert dead_letters(owners, jobs_only=False) == []
