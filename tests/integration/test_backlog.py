"""The owner schedules its whole backlog: observed through a real owner on a real broker.

Start order is read from the `job.started` events of the log. Jobs are queued while the QPU is
paused, then the owner resumes, so every decision sees the whole backlog at once.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas.enums import CommandName, ErrorCode, JobState
from schemas.jobs import JobRequest, SlurmContext
from tests.integration.test_owner import events
from tests.support.owners import register_allocation
from tests.support.sequences import analog_sequence
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

SEQ = analog_sequence(2)


def _start_order(owners, job_ids: set[str]) -> list[str]:  # type: ignore[no-untyped-def]
    return [e.job_id for e in events(owners) if e.topic == "job.started" and e.job_id in job_ids]


def _job(account: str, **fields: object) -> JobRequest:
    return JobRequest(
        job_class="production",
        shots=10,
        sequence=SEQ,
        slurm=SlurmContext(job_id=f"alloc-{account}"),  # registered by `_paused`
        **fields,  # type: ignore[arg-type]
    )


def _paused(owners, *args: str):  # type: ignore[no-untyped-def]
    owners.start("--backend", "synthetic", *args)
    client = owners.client()
    for account in ("chem", "phys"):
        register_allocation(client, f"alloc-{account}", account)
    assert client.control(CommandName.PAUSE).ok
    return client


def test_a_job_waiting_for_a_later_epoch_never_blocks_the_40_jobs_behind_it(owners) -> None:  # type: ignore[no-untyped-def]
    client = owners.start("--backend", "synthetic") and owners.client()
    held = client.submit(SEQ, 10, min_epoch=1)
    behind = client.submit_many([client.build_job(SEQ, 10) for _ in range(40)])
    assert all(h.result(timeout=60).state is JobState.DONE for h in behind)
    entry = held.queue_entry()
    assert entry is not None and entry.position is None and "epoch 1" in (entry.held or "")


def test_fair_share_starts_the_second_accounts_jobs_right_away_at_depth_40(owners) -> None:  # type: ignore[no-untyped-def]
    client = _paused(owners)
    first = [client.submit_request(_job("chem")) for _ in range(40)]
    late = [client.submit_request(_job("phys")) for _ in range(2)]
    assert client.control(CommandName.RESUME).ok
    for handle in first + late:
        assert handle.result(timeout=60).state is JobState.DONE
    order = _start_order(owners, {h.job_id for h in first + late})
    positions = sorted(order.index(h.job_id) for h in late)
    # Not 41st and 42nd (FIFO). Usage is the runs' measured time, so on a loaded machine one
    # slow phys run can outweigh a few chem runs: the second phys job starts early, not 4th.
    assert positions[0] <= 1 and positions[1] <= 10, positions


def test_an_aged_priority_0_job_overtakes_80_priority_9_jobs_and_an_unaged_one_does_not(
    owners,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """Given a priority-0 job aged past priority 9, then a fresh priority-0 job and 80 priority-9
    jobs, the aged job starts first and the fresh one last: its age, not its place in line, put
    the first ahead (under FIFO the fresh one would start second; without aging both last)."""
    policy = tmp_path / "policy.toml"
    policy.write_text("aging_step_s = 0.2\n")
    client = _paused(owners, "--policy", str(policy))
    old = client.submit(SEQ, 10, priority=0)
    deadline = time.monotonic() + 30
    while (entry := old.queue_entry()) is None or entry.factors["effective_priority"] < 10:
        assert time.monotonic() < deadline, f"the job never aged: {entry}"
        client.poll(0.2)
    # One batch, fresh job first: the same age for all (building 80 jobs can take seconds).
    batch = [client.build_job(SEQ, 10, priority=9 if n else 0) for n in range(81)]
    fresh, *urgent = client.submit_many(batch)
    assert client.control(CommandName.RESUME).ok
    for handle in [old, fresh, *urgent]:
        assert handle.result(timeout=60).state is JobState.DONE
    order = _start_order(owners, {old.job_id, fresh.job_id} | {h.job_id for h in urgent})
    assert order[0] == old.job_id and order[-1] == fresh.job_id, (order.index(fresh.job_id),)


def test_a_short_job_deep_in_the_queue_is_backfilled_into_the_calibration_window(
    owners,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("calibration_valid_s = 30\nshot_rate_hz = 10\njob_overhead_s = 0\n")
    client = _paused(owners, "--policy", str(policy))
    assert client.control(CommandName.RESUME).ok
    assert client.control(CommandName.CALIBRATION_START).ok
    assert client.control(CommandName.CALIBRATION_COMPLETE).ok
    assert client.control(CommandName.PAUSE).ok
    too_long = client.submit_many([client.build_job(SEQ, 1000) for _ in range(40)])  # 100 s
    short = client.submit(SEQ, 20)  # 2 s: fits
    assert client.control(CommandName.RESUME).ok
    assert short.result(timeout=60).state is JobState.DONE
    queued = client.queue()
    assert {e.job_id for e in queued} >= {h.job_id for h in too_long}
    assert all("calibration window" in (e.held or "") for e in queued)
    due = [e for e in events(owners) if e.topic == "calibration.due"]
    assert due, "the owner should say that calibration is due"


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_queue_position_and_eta_are_known_and_decrease(owners) -> None:  # type: ignore[no-untyped-def]
    """Given 45 jobs of 0.5 s each behind a paused QPU, the last is 45th with no ETA (paused);
    once the QPU runs its ETA is known, and later both its position and its ETA are smaller."""
    client = _paused(owners, "--shot-rate", "20")
    handles = client.submit_many([client.build_job(SEQ, 10) for _ in range(45)])
    last = handles[-1]
    before = last.queue_entry()
    assert before is not None and before.position == 45 and before.eta_s is None  # paused
    assert client.control(CommandName.RESUME).ok
    first = wait_until(
        lambda: (e := last.queue_entry()) is not None and e.eta_s is not None and e,
        "an ETA for the last job once the QPU runs",
        30,
        step=lambda: client.poll(0.1),
    )
    assert first.position is not None and first.eta_s > 0, first
    later = wait_until(
        lambda: (
            (e := last.queue_entry()) is not None
            and e.eta_s is not None
            and e.position is not None
            and e.position < first.position
            and e
        ),
        "the last job closer to the front",
        60,
        step=lambda: client.poll(0.2),
    )
    assert later.eta_s < first.eta_s, (first, later)
    assert last.result(timeout=120).state is JobState.DONE


def test_a_submitter_cancels_its_own_job_at_depth_at_once(owners) -> None:  # type: ignore[no-untyped-def]
    client = _paused(owners)
    handles = client.submit_many([client.build_job(SEQ, 10) for _ in range(45)])
    target = handles[40]
    reply = target.cancel()
    assert reply.ok, reply.message
    result = target.result(timeout=10)
    assert result.state is JobState.CANCELED
    assert client.control(CommandName.CANCEL, job_id="no-such-job").error.code is (
        ErrorCode.UNKNOWN_JOB
    )
    assert client.control(CommandName.RESUME).ok


def test_deadline_and_max_runtime_end_jobs_timed_out(owners, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.toml"
    policy.write_text("[classes.production]\nrank = 1\nmax_runtime_s = 1\n")
    owners.start("--backend", "synthetic", "--shot-rate", "20", "--policy", str(policy))
    client = owners.client()
    long_run = client.submit(SEQ, 200, job_class="production")  # 10 s at 20 shots/s
    late = client.submit_request(
        JobRequest(
            job_class="production",
            shots=10,
            sequence=SEQ,
            deadline=datetime.now(UTC) + timedelta(seconds=0.5),
        )
    )
    assert late.result(timeout=30).error.code is ErrorCode.DEADLINE_EXCEEDED
    result = long_run.result(timeout=30)
    assert result.state is JobState.TIMED_OUT
    assert result.error.code is ErrorCode.MAX_RUNTIME_EXCEEDED
    assert 0 < sum(result.counts.values()) < 200  # the shots measured are kept


def test_a_backlog_limit_refuses_with_its_reason(owners, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.toml"
    policy.write_text("max_waiting_per_user = 3\n")
    client = _paused(owners, "--policy", str(policy))
    handles = client.submit_many([client.build_job(SEQ, 10) for _ in range(4)])
    refused = handles[3].result(timeout=30)
    assert refused.state is JobState.REJECTED and refused.error.code is ErrorCode.BACKLOG_LIMIT
    assert "user guest" in refused.error.message
    assert client.control(CommandName.RESUME).ok
    assert all(h.result(timeout=30).state is JobState.DONE for h in handles[:3])


def test_sequences_read_back_from_the_log_when_none_is_kept_in_memory(owners) -> None:  # type: ignore[no-untyped-def]
    """Given an owner that keeps no sequence in memory, every job's sequence comes from the log."""
    owners.start("--backend", "synthetic", env={"QSCHED_OWNER__SEQUENCE_CACHE_BYTES": "0"})
    client = owners.client()
    handles = client.submit_many([client.build_job(SEQ, 10) for _ in range(20)])
    assert all(h.result(timeout=60).state is JobState.DONE for h in handles)
    assert [e.topic for e in events(owners)].count("owner.activated") == 1  # never fell over


def test_qsched_status_job_shows_its_position_then_its_end(owners) -> None:  # type: ignore[no-untyped-def]
    """Given a paused QPU with 3 jobs, `qsched status JOB` shows the last at position 3; once the
    QPU resumes and the job ends, the same command shows DONE."""
    import subprocess

    from tests.support.owners import QSCHED

    client = _paused(owners)
    handles = client.submit_many([client.build_job(SEQ, 10) for _ in range(3)])
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("QSCHED_")},
        "QSCHED_AMQP_URL": owners.broker.url,
        "QSCHED_NAMESPACE": owners.broker.topology.namespace,
    }

    def status_of(job_id: str) -> str:
        done = subprocess.run(
            [QSCHED, "status", job_id], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "position 3" in status_of(handles[2].job_id)
    assert client.control(CommandName.RESUME).ok
    assert handles[2].result(timeout=60).state is JobState.DONE
    assert "DONE" in status_of(handles[2].job_id)
