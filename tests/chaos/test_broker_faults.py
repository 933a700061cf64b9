"""The broker under load: kill -9 and restart, and a memory alarm (issue 12, What to build 2).

Private RabbitMQ nodes only: these tests kill or alarm the node. Each scenario ends with the
invariant checker (`tests/support/invariants.py`) over the event log and what the submitters received.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from brokers.bootstrap import PrivateNode
from brokers.connection import channel, connect
from brokers.topology import Topology, build_topology, declare
from producers.client import QPUClient
from producers.errors import BrokerBlocked
from schemas import JobState, Policy
from schemas.jobs import JobResult
from tests.conftest import make_settings
from tests.support.environment import client_env
from tests.support.hostile import FAST_LEASE, finals, log_events
from tests.support.invariants import check
from tests.support.owners import OwnerProcess, start_owner, wait_active
from tests.support.reliability import record
from tests.support.sequences import analog_sequence
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.reliability]

NS = "faults"
ARGS = ("--backend", "synthetic", "--shot-rate", "300")
JOBS_EACH = 80  # per submitter process


def _setup(node: PrivateNode, tmp_path: Path, owners: int) -> tuple[Topology, list[OwnerProcess]]:
    topology = build_topology(make_settings(node.url, NS), Policy())
    with channel(node.url) as ch:
        declare(ch, topology)
    started = [start_owner(node.url, NS, tmp_path, *ARGS, env=FAST_LEASE) for _ in range(owners)]
    return topology, started


def _left(url: str, topology: Topology) -> int:
    with channel(url) as ch:
        return sum(
            ch.queue_declare(q, passive=True).method.message_count
            for q in [*map(topology.job_queue, topology.class_names), topology.control_queue]
        )


def _ctl(node: PrivateNode, *args: str) -> None:
    subprocess.run(
        [str(node.rabbitmqctl), "-n", node.node_name, *args],
        env=node.environment(),
        capture_output=True,
        timeout=120,
        check=True,
    )


@pytest.mark.timeout(900)
def test_a_broker_killed_and_restarted_under_load_loses_and_duplicates_nothing(
    private_broker: PrivateNode, tmp_path: Path
) -> None:
    """Given two owners and two submitter processes on a private node, when the node is killed
    -9 mid-load and restarted, then the owners and submitters reconnect and every job ends
    exactly once; results the owner sent while a client's reply queue was gone with the node
    are read from the log (counted in the note)."""
    node = private_broker
    topology, owners = _setup(node, tmp_path, 2)
    try:
        settings = make_settings(node.url, NS)
        wait_active(QPUClient(settings=settings), timeout_s=60)
        outs = []
        for n in range(2):
            out = tmp_path / f"submitter-{n}.jsonl"
            args = [sys.executable, "-m", "tests.chaos.chaos_submitter", "--url", node.url]
            args += [
                "--namespace",
                NS,
                "--jobs",
                str(JOBS_EACH),
                "--seed",
                str(n),
                "--out",
                str(out),
            ]
            log = (tmp_path / f"submitter-{n}.log").open("wb")
            env = client_env(node.url, NS)
            outs.append((subprocess.Popen(args, env=env, stdout=log, stderr=log), out))
        reader = connect(node.url, name="test-reader").channel()
        wait_until(lambda: len(finals(log_events(reader, topology))) >= 20, "20 jobs done", 120)
        killed_at = time.monotonic()
        node.kill()
        node.restart()
        wait_until(lambda: _answers(settings), "an active owner after the restart", 120)
        gap_s = time.monotonic() - killed_at
        for process, _ in outs:
            assert process.wait(timeout=600) == 0
        sent, received, via_log = _read(outs)
        assert len(set(sent)) == 2 * JOBS_EACH, f"the submitters sent {len(set(sent))} jobs"
        crashes = [o for o in owners if o.process.poll() is not None]
        for owner in owners:
            owner.stop()
        events = log_events(connect(node.url, name="test-reader-2").channel(), topology)
        verdict = check(events, sent, received, _left(node.url, topology))
        record(
            "broker kill -9 and restart under load",
            verdict=verdict,
            owner_crashes=len(crashes),
            worst_gap_s=gap_s,
            note=(
                f"2 owners, 2 submitter processes; an owner answered {gap_s:.1f} s after the "
                f"kill (node restart included); {via_log} results read from the log (their "
                "reply queue went with the node)"
            ),
        )
        assert verdict.ok, verdict.problems[:20]
        assert not crashes, [o.log()[-2000:] for o in crashes]
    finally:
        for owner in owners:
            owner.stop()


@pytest.mark.timeout(600)
def test_a_memory_alarm_blocks_publishes_with_a_clear_timeout_and_nothing_is_lost(
    private_broker: PrivateNode, tmp_path: Path
) -> None:
    """Given an owner on a private node, when the node raises a memory alarm, then a submit
    fails with BrokerBlocked naming the alarm within its confirm timeout; once the alarm
    clears, the job (sent again with the same id) and the jobs before it end exactly once."""
    node = private_broker
    topology, owners = _setup(node, tmp_path, 1)
    try:
        settings = make_settings(node.url, NS)
        client = QPUClient(settings=settings)
        wait_active(client, timeout_s=60)
        before = client.submit_many([client.build_job(analog_sequence(2), 10) for _ in range(5)])
        assert all(h.result(timeout=60).state is JobState.DONE for h in before)
        _ctl(node, "set_vm_memory_high_watermark", "0.000001")
        blocked = client.build_job(analog_sequence(2), 10)
        started = time.monotonic()
        with pytest.raises(BrokerBlocked) as info:
            client.submit_request(blocked)
        elapsed_s = time.monotonic() - started
        assert "blocks publishing" in str(info.value) and elapsed_s < 60
        _ctl(node, "set_vm_memory_high_watermark", "0.4")
        # Sending it again is safe (same job id: at most one run); the result goes to the reply
        # queue the job named first, which the blocked client still reads.
        QPUClient(settings=settings).submit_request(blocked)
        result = client.wait_result(blocked.job_id, timeout=120)
        assert result.state is JobState.DONE
        # The blocked client's first copy reaches the queue once the alarm clears, before or
        # after the resend: the owner takes the later one as a copy (job.duplicate). Wait for
        # it, so that nothing of this job is still on its way when the owners stop.
        reader = connect(node.url, name="test-reader").channel()
        wait_until(
            lambda: (
                [e.topic for e in log_events(reader, topology) if e.job_id == blocked.job_id].count(
                    "job.duplicate"
                )
                == 1
            ),
            "the second copy of the blocked job dropped as a duplicate (job.duplicate)",
            60,
        )
        crashes = [o for o in owners if o.process.poll() is not None]
        for owner in owners:
            owner.stop()
        sent = [h.job_id for h in before] + [blocked.job_id]
        received = {h.job_id: h.result(timeout=1) for h in before} | {blocked.job_id: result}
        events = log_events(reader, topology)
        verdict = check(events, sent, received, _left(node.url, topology))
        record(
            "memory alarm on the node",
            verdict=verdict,
            owner_crashes=len(crashes),
            note=(
                f"a submit during the alarm failed with BrokerBlocked after {elapsed_s:.0f} s "
                "(its confirm timeout); sent again after the alarm cleared, it ran once"
            ),
        )
        assert verdict.ok, verdict.problems
        assert not crashes
    finally:
        for owner in owners:
            owner.stop()


def _answers(settings: object) -> bool:
    try:
        client = QPUClient(settings=settings)  # type: ignore[arg-type]
    except Exception:
        return False
    try:
        wait_active(client, timeout_s=5)
        return True
    except Exception:
        return False
    finally:
        client.close()


def _read(
    outs: list[tuple[subprocess.Popen[bytes], Path]],
) -> tuple[list[str], dict[str, JobResult], int]:
    sent: list[str] = []
    received: dict[str, JobResult] = {}
    via_log = 0
    for _, path in outs:
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if "job_id" not in row:
                continue
            sent.append(row["job_id"])
            if row.get("result"):
                received[row["job_id"]] = JobResult.model_validate(row["result"])
                via_log += row["via"] == "log"
    return sent, received, via_log
