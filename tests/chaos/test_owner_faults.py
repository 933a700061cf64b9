"""The owner under faults: killed owners, a crashing emulator, a broker's consumer_timeout."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import pika.exceptions
import pytest

from brokers.bootstrap import PrivateNode
from brokers.connection import channel, connect
from brokers.settings import load_settings
from brokers.topology import build_topology, declare
from producers.client import QPUClient
from schemas import CommandName, JobState, Policy
from tests.conftest import BrokerFixture, OwnerHarness
from tests.integration.test_owner import events
from tests.support.invariants import check
from tests.support.logread import whole_log
from tests.support.owners import start_owner, wait_active, wait_for_log, wait_running
from tests.support.sequences import analog_sequence
from tests.support.waiting import wait_until

pytestmark = pytest.mark.chaos


def test_kill_9_of_the_active_owner_hands_over_to_a_ready_standby_within_3_s_and_loses_nothing(
    owners: OwnerHarness,
) -> None:
    """Given an active owner and a standby already waiting on the lease, when the active one is
    killed mid-job, the standby is active (its `owner.activated` event) within 3 s of the kill,
    re-runs the interrupted job, and every job gets exactly one result (the invariant checker)."""
    env = {"QSCHED_OWNER__LEASE_RETRY_S": "0.2"}
    active = owners.start("--backend", "synthetic", "--shot-rate", "200", env=env)
    first_id = owners.client().control(CommandName.STATUS).status.owner_id
    standby = owners.start("--backend", "synthetic", "--shot-rate", "200", env=env, wait=False)
    wait_for_log(standby, "standby: another owner holds", timeout_s=60)
    client = owners.client()
    handles = [client.submit(analog_sequence(2), 200, job_class="production") for _ in range(5)]
    wait_running(client, handles[0].job_id)
    killed_at = datetime.now(UTC)
    active.kill()
    reply = wait_active(client, timeout_s=30)
    assert reply.status is not None and reply.status.owner_id != first_id
    results = [h.result(timeout=60) for h in handles]
    assert all(r.state is JobState.DONE and sum(r.counts.values()) == 200 for r in results)
    assert results[0].attempts == 2
    log = events(owners)  # read once every job ended: a quiet log
    new_active = next(e for e in log if e.topic == "owner.activated" and e.owner_id != first_id)
    took_over_s = (new_active.at - killed_at).total_seconds()
    assert took_over_s < 3.0, f"the ready standby took {took_over_s:.2f} s to become active"
    # The invariant checker, not the product's own timeline code: every job ended exactly
    # once, never two runs at once across both owners, the first job rerun only after its cut.
    verdict = check(log, [h.job_id for h in handles], {r.job_id: r for r in results})
    assert verdict.ok, verdict.problems
    assert verdict.activations == 2 and verdict.starts == len(handles) + 1
    actives = [e for e in log if e.topic == "owner.activated"]
    assert len({e.owner_id for e in actives}) == 2
    first_job = [e.topic for e in log if e.job_id == handles[0].job_id]
    assert first_job.count("job.started") == 2 and first_job.count("job.requeued") == 1, first_job


def _children(pid: int) -> list[int]:
    out = subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
    ).stdout
    return [int(p) for p in out.split()]


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_an_emulator_crash_is_retried_by_the_budget_and_the_owner_lives_on(
    owners: OwnerHarness,
) -> None:
    owner = owners.start("--backend", "emulator", "--shot-rate", "200")
    client = owners.client()
    doomed = client.submit(analog_sequence(3), 2000, job_class="production")
    wait_running(client, doomed.job_id)
    (worker,) = _children(owner.pid)
    os.kill(worker, signal.SIGKILL)
    result = doomed.result(timeout=60)  # the crash is retryable: the default budget runs it again
    assert result.state is JobState.DONE and result.attempts == 2
    assert sum(result.counts.values()) == 2000
    retrying = [e for e in events(owners) if e.topic == "job.retrying"]
    assert len(retrying) == 1 and "emulator process died" in (retrying[0].reason or "")
    after = client.submit(analog_sequence(3), 50, job_class="production").result(timeout=60)
    assert after.state is JobState.DONE and sum(after.counts.values()) == 50


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_consumer_timeout_neither_drops_nor_duplicates_a_long_job(
    private_broker_factory: Callable[..., PrivateNode], tmp_path: object
) -> None:
    """Given a broker whose consumer_timeout is 2 s, a 6 s job and held candidates behind it each
    run exactly once and the owner keeps its connection."""
    node = private_broker_factory(("consumer_timeout = 2000",), {"channel_tick_interval": 200})
    _a_delivery_held_past_the_timeout_closes_its_channel(node.url)
    settings = load_settings(amqp_url=node.url, namespace="ct")
    with channel(node.url) as ch:
        declare(ch, build_topology(settings, Policy()))
    env = {"QSCHED_BROKER__CONSUMER_TIMEOUT_S": "2"}
    owner = start_owner(
        node.url, "ct", tmp_path, "--backend", "synthetic", "--shot-rate", "100", env=env
    )  # type: ignore[arg-type]
    try:
        client = QPUClient(settings=settings)  # its reply queue dies with the private node
        wait_active(client)
        long_job = client.submit(analog_sequence(2), 600, job_class="production")
        waiting = [client.submit(analog_sequence(2), 10, job_class="development") for _ in range(4)]
        results = [h.result(timeout=60) for h in [long_job, *waiting]]
        assert all(r.state is JobState.DONE for r in results)
        assert results[0].attempts == 1
        assert "lost the broker" not in owner.log()
        fixture = BrokerFixture(node.url, settings, build_topology(settings, Policy()))
        started = Counter(e.job_id for e in _events_of(fixture) if e.topic == "job.started")
        assert set(started.values()) == {1}
        client.close()
    finally:
        owner.stop()


def _a_delivery_held_past_the_timeout_closes_its_channel(url: str) -> None:
    """The node's short consumer_timeout is in force: a raw consumer that holds a delivery
    unacked past it has its channel closed by the broker (406 PRECONDITION_FAILED)."""
    conn = connect(url, name="consumer-timeout-probe")
    try:
        ch = conn.channel()
        queue = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", queue, b"held")
        ch.basic_consume(queue, lambda *args: None)  # receives it, never acks
        codes: list[int] = []

        def serve() -> None:
            try:
                conn.process_data_events(time_limit=0.2)
            except pika.exceptions.ChannelClosedByBroker as exc:
                codes.append(exc.reply_code)

        wait_until(
            lambda: not ch.is_open,
            "the broker closing a channel that held a delivery past consumer_timeout (2 s)",
            timeout_s=30,
            step=serve,
        )
        assert codes in ([], [406])
        assert conn.is_open  # only the channel, not the connection
    finally:
        if conn.is_open:
            conn.close()


def _events_of(fixture: BrokerFixture) -> list:
    return whole_log(fixture.channel(), fixture.topology.events_stream, strict=False)
