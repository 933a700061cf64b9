"""Chaos under continuous load (issue 12, What to build 2), checked by one invariant checker.

Given three submitter processes sending jobs at a random pace and three owners whose backend
fails 5% of runs (retryably: the retry budget runs them again), when the active
owner is killed -9 at random moments at least ten times (twice during one long job, a fresh
standby started after each kill), then the invariant checker (`tests/support/invariants.py`) finds
nothing: every accepted job ended exactly once, never two at once, no stale-term event took
effect, no job ran twice unless its run was cut off, every result reached its submitter, and
nothing was left unacked once the owners stopped. The figures go to the reliability report.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from schemas import JobState
from schemas.jobs import JobResult
from tests.conftest import OwnerHarness
from tests.support.environment import client_env
from tests.support.hostile import FAST_LEASE, log_events, owner_with_id, wait_running_somewhere
from tests.support.invariants import check
from tests.support.owners import OwnerProcess, wait_active
from tests.support.reliability import record
from tests.support.sequences import analog_sequence
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.reliability]

ARGS = ("--backend", "synthetic", "--shot-rate", "100")
SUBMITTERS = 3
JOBS_EACH = 80
KILLS = 12
FAULTY = FAST_LEASE | {"QSCHED_OWNER__SYNTHETIC_FAILURE_RATE": "0.05"}  # retried by the budget
STANDBY = "standby: another owner holds"  # what a standby logs once it waits for the lease


def _submitters(owners: OwnerHarness, out: Path) -> list[tuple[subprocess.Popen[bytes], Path]]:
    started = []
    for n in range(SUBMITTERS):
        path = out / f"submitter-{n}.jsonl"
        env = client_env(owners.broker.url, owners.broker.topology.namespace)
        args = [sys.executable, "-m", "tests.chaos.chaos_submitter", "--url", owners.broker.url]
        args += ["--namespace", owners.broker.topology.namespace, "--jobs", str(JOBS_EACH)]
        args += ["--seed", str(n), "--out", str(path)]
        log = (out / f"submitter-{n}.log").open("wb")
        started.append((subprocess.Popen(args, env=env, stdout=log, stderr=log), path))
    return started


def _kill_active(owners: OwnerHarness, client: object, killed: list[OwnerProcess]) -> float:
    """kill -9 the active owner once a standby is ready, start a fresh standby; the seconds
    until another owner answers."""
    status = wait_active(client, timeout_s=60).status  # type: ignore[arg-type]
    assert status is not None
    victim = owner_with_id(owners.owners, status.owner_id)
    standbys = [o for o in owners.owners if o is not victim and o not in killed]
    wait_until(
        lambda: any(STANDBY in o.log() for o in standbys),
        "a standby ready before the kill",
        90,
    )
    at = time.monotonic()
    victim.kill()
    killed.append(victim)
    owners.start(*ARGS, env=FAULTY, wait=False)
    while True:
        again = wait_active(client, timeout_s=60).status  # type: ignore[arg-type]
        if again is not None and again.owner_id != status.owner_id:
            return time.monotonic() - at


@pytest.mark.timeout(900)
def test_ten_random_kills_under_load_break_no_invariant(
    owners: OwnerHarness, tmp_path: Path
) -> None:
    rng = random.Random()
    for n in range(3):
        owners.start(*ARGS, env=FAULTY, wait=n == 0)
    client = owners.client()
    long_job = client.submit(analog_sequence(2), 2000, job_class="production")  # ~20 s
    submitters = _submitters(owners, tmp_path)
    killed: list[OwnerProcess] = []
    gaps = []
    for _ in range(2):  # twice during the same job
        running = wait_running_somewhere(client, long_job.job_id, timeout_s=120)
        owner_with_id(owners.owners, running.owner_id)  # it is one of ours
        gaps.append(_kill_active(owners, client, killed))
    while len(killed) < KILLS:
        time.sleep(rng.uniform(0.3, 3.0))  # a random moment of the load, not a wait for an outcome
        gaps.append(_kill_active(owners, client, killed))
    for process, _ in submitters:
        assert process.wait(timeout=600) == 0
    sent: list[str] = []
    received: dict[str, JobResult] = {}
    via_log = 0
    for _, path in submitters:
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if "job_id" not in row:
                continue
            sent.append(row["job_id"])
            if row["via"] == "reply":
                received[row["job_id"]] = JobResult.model_validate(row["result"])
            else:
                via_log += 1
    final = long_job.result(timeout=120)
    sent.append(long_job.job_id)
    received[long_job.job_id] = final
    crashes = [o for o in owners.owners if o not in killed and o.process.poll() is not None]
    for owner in owners.owners:
        owner.stop()
    ch = owners.broker.channel()
    topology = owners.broker.topology
    left = sum(
        ch.queue_declare(q, passive=True).method.message_count
        for q in [*map(topology.job_queue, topology.class_names), topology.control_queue]
    )
    events = log_events(ch, topology)
    verdict = check(events, sent, received, left)
    retries = sum(e.topic == "job.retrying" for e in events)
    long_cuts = sum(e.topic == "job.requeued" and e.job_id == long_job.job_id for e in events)
    record(
        "owner kill -9 under load",
        verdict=verdict,
        owner_crashes=len(crashes),
        worst_gap_s=max(gaps),
        note=(
            f"{SUBMITTERS} submitter processes, {len(killed)} kills of the "
            f"active owner ({long_cuts} cut the 2000-shot job), {verdict.activations} "
            f"activations; {retries} runs failed on the backend and were retried; "
            f"failover gaps {min(gaps):.2f}-{max(gaps):.2f} s; {via_log} results read from the log"
        ),
    )
    assert verdict.ok, verdict.problems[:20]
    assert not crashes, [o.log()[-2000:] for o in crashes]
    assert final.state is JobState.DONE and sum(final.counts.values()) == 2000
    assert final.attempts >= 3 and long_cuts >= 2  # both kills meant for it landed mid-run
    assert len(sent) == SUBMITTERS * JOBS_EACH + 1
    print(f"chaos: {verdict}, gaps {[round(g, 2) for g in gaps]}")
