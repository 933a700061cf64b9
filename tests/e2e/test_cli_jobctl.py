"""Per-job control as real `qsched` processes against a real owner: show, hold, release,
update, requeue, and the audit trail in `qsched history`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from schemas import CommandName, JobState
from tests.conftest import OwnerHarness
from tests.integration.test_owner import events
from tests.support.owners import run_qsched, wait_running
from tests.support.sequences import analog_sequence
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


def qsched(owners: OwnerHarness, *args: str) -> subprocess.CompletedProcess[str]:
    """`qsched ARGS` on the test's broker and namespace."""
    return run_qsched(owners.broker.url, owners.broker.topology.namespace, *args)


def shown(owners: OwnerHarness, job_id: str) -> dict[str, object]:
    """`qsched show JOB --json`, checked to be one object."""
    done = qsched(owners, "show", job_id[:8], "--json")
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    record = json.loads(line)
    assert isinstance(record, dict)
    return record


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_hold_release_update_requeue_and_show_from_the_cli(owners: OwnerHarness) -> None:
    owners.start("--backend", "synthetic", "--shot-rate", "50")
    client = owners.client()
    long = client.submit(analog_sequence(2), 2000, job_class="production")  # ~40 s
    wait_running(client, long.job_id)
    held = client.submit(analog_sequence(2), 10, job_class="production")
    later = client.submit(analog_sequence(2), 10, job_class="production")

    # hold: the job waits with its reason (guest is the default policy's operator)
    hold = qsched(owners, "hold", held.job_id[:8])
    assert hold.returncode == 0 and "operator hold" in hold.stdout, hold.stderr
    record = shown(owners, held.job_id)
    assert record["state"] == JobState.QUEUED.value and record["hold_kind"] == "operator"
    assert "hold by guest" in str(record["held"]) and record["position"] is None
    assert record["user"] == "guest" and record["shots"] == 10 and record["accepted_at"]
    assert [(c["command"], c["by"]) for c in record["commands"]] == [("hold", "guest")]  # type: ignore[union-attr]

    # update: a priority raised by an operator moves the job to the front
    update = qsched(owners, "update", later.job_id[:8], "--priority", "9")
    assert update.returncode == 0 and "priority 0 -> 9" in update.stdout, update.stderr
    assert shown(owners, later.job_id)["position"] == 1

    # show a running job, then requeue it: it waits again and runs from its first shot
    running = shown(owners, long.job_id)
    assert running["state"] == JobState.RUNNING.value and running["position"] == 0
    assert running["started_at"] and running["attempt"] == 1
    text = qsched(owners, "show", long.job_id[:8])
    assert text.returncode == 0 and "state:" in text.stdout and "RUNNING" in text.stdout
    requeue = qsched(owners, "requeue", long.job_id[:8])
    assert requeue.returncode == 0 and "first shot" in requeue.stdout, requeue.stderr
    assert later.result(timeout=60).state is JobState.DONE  # priority 9 went first
    wait_until(
        lambda: shown(owners, long.job_id)["attempt"] == 2,
        "the requeued job on its second attempt",
        timeout_s=60,
    )
    requeued = [e for e in events(owners) if e.topic == "job.requeued"]
    assert [e.job_id for e in requeued] == [long.job_id]
    assert "measured shots dropped" in (requeued[0].reason or "")
    assert client.control(CommandName.CANCEL, job_id=long.job_id).ok

    # release: the held job runs
    release = qsched(owners, "release", held.job_id[:8])
    assert release.returncode == 0, release.stderr
    assert held.result(timeout=60).state is JobState.DONE
    ended = shown(owners, held.job_id)
    assert ended["state"] == JobState.DONE.value and ended["shots_done"] == 10
    assert ended["ended_at"] and "hold_kind" not in ended  # the owner no longer has it
    assert [c["command"] for c in ended["commands"]] == ["hold", "release"]  # type: ignore[union-attr]

    # the audit trail in history; a finished job is no longer held
    history = qsched(owners, "history", held.job_id[:8])
    assert history.returncode == 0, history.stderr
    assert "control.hold" in history.stdout and "by guest" in history.stdout
    assert "job.held" in history.stdout and "job.released" in history.stdout
    late = qsched(owners, "hold", held.job_id[:8])
    assert late.returncode == 1 and "ended DONE" in late.stderr


def test_show_of_an_unknown_job_and_update_without_a_change_are_refused(
    owners: OwnerHarness,
) -> None:
    owners.start("--backend", "synthetic")
    missing = qsched(owners, "show", "00000000-0000-4000-8000-000000000000")
    assert missing.returncode == 1 and "not waiting nor running" in missing.stderr
    usage = qsched(owners, "update", "00000000-0000-4000-8000-000000000000")
    assert usage.returncode == 2 and "--priority or --class" in usage.stderr


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_a_job_that_ended_error_is_requeued_from_the_cli_also_by_the_next_owner(
    owners: OwnerHarness, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[retry]\nattempts = 1\n")  # a failed run ends the job ERROR at once
    failing = {
        "QSCHED_OWNER__SYNTHETIC_FAILURE_RATE": "1",  # every run fails half way
        "QSCHED_OWNER__SNAPSHOT_EVERY_EVENTS": "10",  # the next owner starts from a snapshot
    }
    first = owners.start("--backend", "synthetic", "--policy", str(policy), env=failing)
    owners.start("--backend", "synthetic", "--policy", str(policy), env=failing, wait=False)
    client = owners.client()
    job, *others = (client.submit(analog_sequence(2), 10) for _ in range(3))
    ended = job.result(timeout=60)
    assert ended.state is JobState.ERROR and ended.attempts == 1
    for other in others:  # enough events for a snapshot after the job's acceptance
        assert other.result(timeout=60).state is JobState.ERROR
    snapshots = [e for e in events(owners) if e.topic == "owner.snapshot"]
    assert snapshots, "no snapshot: the test would not check that snapshots keep the offset"
    first.kill()
    wait_until(
        lambda: (
            shown(owners, job.job_id)["state"] == JobState.ERROR.value
            and qsched(owners, "status").returncode == 0
        ),
        "the standby active",
        timeout_s=60,
    )
    requeued = qsched(owners, "requeue", job.job_id[:8])
    assert requeued.returncode == 0, requeued.stderr
    assert "waits again after ending ERROR" in requeued.stdout
    wait_until(
        lambda: [e.topic for e in events(owners) if e.job_id == job.job_id].count("job.error") == 2,
        "the requeued job's second run ending",
        timeout_s=60,
    )
    record = shown(owners, job.job_id)
    assert record["state"] == JobState.ERROR.value and record["attempt"] == 2
    assert [c["command"] for c in record["commands"]] == ["requeue"]  # type: ignore[union-attr]
    done = qsched(owners, "requeue", "00000000-0000-4000-8000-000000000000")
    assert done.returncode == 1
