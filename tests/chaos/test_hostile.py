"""Hostile submitters and faults against the real owner (issue 12 items 1-4 and 7, issue 9 item 7).

Every test watches the owner from outside only: real `qsched owner` processes, a real broker,
and what a user or an operator can see (results, the event log, the dead-letter queue, the
device queue, whether the owner processes are alive). No test reads the owner's internals, so
these tests keep guarding the behaviour when the owner's insides are replaced.

Tests that need a second AMQP user are in ``test_hostile_users.py``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from brokers.bootstrap import PrivateNode
from brokers.connection import channel, connect
from brokers.stream import fetch_last_record
from brokers.topology import CODE_HEADER, REASON_HEADER, build_topology, declare
from producers.client import QPUClient
from schemas import CommandName, ErrorCode, JobState, QPUState, decode_any
from schemas.messages import DeviceSpecs
from schemas.policy import Policy
from tests.conftest import OwnerHarness, make_settings
from tests.support.hostile import (
    FAST_LEASE,
    confirmed_channel,
    dead_letters,
    finals,
    job_props,
    log_events,
    new_job,
    owner_with_id,
    publish_command,
    publish_job,
    wait_running_somewhere,
    wait_until,
)
from tests.support.owners import start_owner, wait_active, wait_running
from tests.support.sequences import analog_sequence

pytestmark = pytest.mark.chaos


# ---- item 1: headers a submitter sends are not the owner's bookkeeping ----------------------


FORGED_HEADERS: list[dict[str, Any]] = [
    {"x-qsched-attempt": "abc"},
    {"x-qsched-counts": "zz"},
    {"x-qsched-preemptions": "x"},
    {"x-qsched-counts": {"00": "many"}},
    {"x-qsched-counts": {"00": 10**6}},
    {"x-qsched-attempt": -5, "x-qsched-user": {"a": 1}, "x-qsched-reply-to": 5},
]


def test_forged_bookkeeping_headers_kill_no_owner_and_the_next_job_runs(
    owners: OwnerHarness,
) -> None:
    """Given an active and a standby owner, when jobs with malformed x-qsched-* headers arrive,
    then both owners stay alive, each bad job runs normally or is refused with a reason, and a
    normal job after them ends DONE."""
    active = owners.start("--backend", "synthetic", env=FAST_LEASE)
    standby = owners.start("--backend", "synthetic", env=FAST_LEASE, wait=False)
    client = owners.client()
    topology = owners.broker.topology
    ch = confirmed_channel(owners.broker.url)
    bad = []
    for headers in FORGED_HEADERS:
        job = new_job()
        publish_job(ch, topology, job, reply_to=client.reply_queue_name, headers=headers)
        bad.append(job)
    after = client.submit(analog_sequence(2), 10, job_class="production")
    assert after.result(timeout=60).state is JobState.DONE
    for job in bad:
        result = client.wait_result(job.job_id, timeout=30)
        assert result.state in (JobState.DONE, JobState.REJECTED), result
        if result.state is JobState.DONE:
            assert sum(result.counts.values()) == 10 and result.attempts == 1
    refused = {j.job_id for j in bad if client.results[j.job_id].state is JobState.REJECTED}
    dead = dead_letters(owners.broker.channel(), topology.dead_queue)
    assert refused <= set(dead) and all(dead[i].get(REASON_HEADER) for i in refused)
    assert active.process.poll() is None, active.log()[-3000:]
    assert standby.process.poll() is None, standby.log()[-3000:]


# ---- item 2: replies that cannot be delivered, reply queues that are not the sender's ---------


def test_a_reply_queue_that_refuses_publishes_does_not_wedge_the_owner(
    shared_owner: OwnerHarness,
) -> None:
    """Given a reply queue of the sender's own that nacks every publish, when a job and a command
    name it as reply_to, then the failed replies are logged and dropped, the owner never
    reconnects, the job still ends once in the log, and other jobs keep running."""
    [owner] = shared_owner.owners
    client = shared_owner.client()
    topology = shared_owner.broker.topology
    wedge = shared_owner.broker.declare_queue(
        f"{topology.namespace}.reply.guest.wedge",
        arguments={"x-max-length": 0, "x-overflow": "reject-publish"},
    )
    ch = confirmed_channel(shared_owner.broker.url)
    command_id = publish_command(ch, topology, wedge)
    wedged = new_job()
    publish_job(ch, topology, wedged, reply_to=wedge)
    normal = [client.submit(analog_sequence(2), 10, job_class="production") for _ in range(3)]
    assert all(h.result(timeout=60).state is JobState.DONE for h in normal)
    reader = shared_owner.broker.channel()
    log = wait_until(
        lambda: (
            (events := log_events(reader, topology)) and finals(events)[wedged.job_id] and events
        ),
        30,
        "the wedged job's final event",
    )
    assert finals(log)[wedged.job_id] == 1
    # A dropped reply is logged, keyed by what it answered (the job id or the command id).
    failed = [e for e in log if e.topic.endswith(".reply_failed")]
    dropped = {e.job_id for e in failed} | {e.data.get("correlation_id") for e in failed}
    assert {wedged.job_id, command_id} <= dropped, [e.topic for e in failed]
    activations = [e for e in log if e.topic in ("owner.active", "owner.activated")]
    assert len(activations) == 1, "the owner reconnected or failed over"
    assert "lost the broker" not in owner.log()
    assert client.control(CommandName.STATUS).ok


def test_reply_to_the_device_queue_cannot_overwrite_the_device_specs(
    shared_owner: OwnerHarness,
) -> None:
    """Given an owner, when a garbage message, a valid job and a command each name the device
    queue as reply_to, then all three are dead-lettered with a reason, none runs, and the device
    specs stream's last record is still the device specs."""
    client = shared_owner.client()
    topology = shared_owner.broker.topology
    ch = confirmed_channel(shared_owner.broker.url)
    device = topology.device_queue
    garbage_id = f"garbage-{uuid.uuid4().hex[:8]}"
    ch.basic_publish(
        topology.jobs_exchange,
        "production",
        b"\xc1 not msgpack",
        job_props(message_id=garbage_id, reply_to=device),
        mandatory=True,
    )
    valid = new_job()
    publish_job(ch, topology, valid, reply_to=device)
    command_id = publish_command(ch, topology, device)
    other_user = new_job()  # another user's reply queue is not the sender's either
    publish_job(ch, topology, other_user, reply_to=f"{topology.namespace}.reply.alice.x1")
    after = client.submit(analog_sequence(2), 10, job_class="production")
    assert after.result(timeout=60).state is JobState.DONE
    wanted = {garbage_id, valid.job_id, command_id, other_user.job_id}
    dead = wait_until(
        lambda: (
            (found := dead_letters(shared_owner.broker.channel(), topology.dead_queue))
            and wanted <= set(found)
            and found
        ),
        30,
        f"dead letters for {wanted}",
    )
    assert all("reply_to" in str(dead[i].get(REASON_HEADER)) for i in wanted - {garbage_id})
    last = fetch_last_record(shared_owner.broker.channel().connection, device, 5.0, 0.05)
    assert last is not None
    assert isinstance(decode_any(last.body, last.properties.type), DeviceSpecs), last.properties
    started = {
        e.job_id
        for e in log_events(shared_owner.broker.channel(), topology)
        if e.topic == "job.started"
    }
    assert valid.job_id not in started and other_user.job_id not in started


# ---- item 4: repeated failover during one job -------------------------------------------------


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_a_job_survives_three_kills_in_a_row_of_the_owner_running_it(
    owners: OwnerHarness,
) -> None:
    """Given three owners and a ~5 s job, when the owner running it is killed -9 three times in a
    row (a fresh standby started after each kill), then the job still ends DONE exactly once,
    with one result to its submitter, after four attempts."""
    args = ("--backend", "synthetic", "--shot-rate", "100")
    owners.start(*args, env=FAST_LEASE)
    owners.start(*args, env=FAST_LEASE, wait=False)
    owners.start(*args, env=FAST_LEASE, wait=False)
    client = owners.client()
    job = client.submit(analog_sequence(2), 500, job_class="production")
    behind = [client.submit(analog_sequence(2), 10, job_class="production") for _ in range(2)]
    killed: list[str] = []
    for _ in range(3):
        status = wait_running_somewhere(client, job.job_id, timeout_s=60)
        assert status.owner_id not in killed, f"{status.owner_id} was killed already"
        owner_with_id(owners.owners, status.owner_id).kill()
        killed.append(status.owner_id)
        owners.start(*args, env=FAST_LEASE, wait=False)
    result = job.result(timeout=90)
    assert result.state is JobState.DONE and sum(result.counts.values()) == 500
    assert result.attempts == 4
    assert all(h.result(timeout=60).state is JobState.DONE for h in behind)
    log = log_events(owners.broker.channel(), owners.broker.topology)
    assert finals(log) == {h.job_id: 1 for h in [job, *behind]}
    starts = Counter(e.job_id for e in log if e.topic == "job.started")
    assert starts[job.job_id] == 4


# ---- item 7: loose wire checks ------------------------------------------------------------------


def test_wrong_content_type_bad_priority_and_missing_user_id_are_refused_with_reasons(
    shared_owner: OwnerHarness,
) -> None:
    """Given valid job bodies, when one is sent as text/plain, one with AMQP priority 200 and one
    without user_id, then none runs: each is dead-lettered with its reason (and answered
    REJECTED where the sender is known)."""
    client = shared_owner.client()
    topology = shared_owner.broker.topology
    ch = confirmed_channel(shared_owner.broker.url)
    text, loud, anonymous = new_job(), new_job(), new_job()
    reply = client.reply_queue_name
    publish_job(ch, topology, text, reply_to=reply, content_type="text/plain")
    publish_job(ch, topology, loud, reply_to=reply, priority=200)
    publish_job(ch, topology, anonymous, reply_to=reply, user_id=None)
    after = client.submit(analog_sequence(2), 10, job_class="production")
    assert after.result(timeout=60).state is JobState.DONE
    assert client.wait_result(text.job_id, timeout=30).state is JobState.REJECTED
    assert "content_type" in client.results[text.job_id].error.message
    assert client.wait_result(loud.job_id, timeout=30).state is JobState.REJECTED
    assert "priority" in client.results[loud.job_id].error.message
    wanted = {text.job_id, loud.job_id, anonymous.job_id}
    dead = wait_until(
        lambda: (
            (found := dead_letters(shared_owner.broker.channel(), topology.dead_queue))
            and wanted <= set(found)
            and found
        ),
        30,
        "dead letters of the three jobs",
    )
    assert dead[anonymous.job_id][CODE_HEADER] == ErrorCode.NOT_AUTHORISED.value
    assert "user_id required" in dead[anonymous.job_id][REASON_HEADER]
    assert anonymous.job_id not in client.results  # no reply to a sender nobody vouched for
    started = {
        e.job_id
        for e in log_events(shared_owner.broker.channel(), topology)
        if e.topic == "job.started"
    }
    assert not wanted & started


# ---- issue 9 item 7: failover while held, broker restart ---------------------------------------


@pytest.mark.parametrize("hold", [CommandName.PAUSE, CommandName.DRAIN])
def test_kill_9_while_paused_or_draining_keeps_the_hold_and_loses_nothing(
    owners: OwnerHarness, hold: CommandName
) -> None:
    """Given a job running when an operator pauses (or drains), when the active owner is killed
    -9, then the standby becomes active and stays PAUSED (DRAINING), and after resume every job
    ends DONE exactly once."""
    args = ("--backend", "synthetic", "--shot-rate", "100")
    first = owners.start(*args, env=FAST_LEASE)
    standby = owners.start(*args, env=FAST_LEASE, wait=False)
    client = owners.client()
    running = client.submit(analog_sequence(2), 500, job_class="production")
    waiting = [client.submit(analog_sequence(2), 10, job_class="production") for _ in range(3)]
    before = wait_running(client, running.job_id).owner_id
    assert client.control(hold).ok
    first.kill()
    state = QPUState.PAUSED if hold is CommandName.PAUSE else QPUState.DRAINING
    status = wait_active(client, timeout_s=30).status
    assert status is not None and status.owner_id != before
    assert status.qpu_state is state
    assert standby.process.poll() is None, standby.log()[-3000:]
    again = client.control(CommandName.STATUS).status
    assert again is not None and again.owner_id == status.owner_id, "the new owner restarted"
    assert again.qpu_state is state
    assert client.control(CommandName.RESUME).ok
    handles = [running, *waiting]
    assert all(h.result(timeout=60).state is JobState.DONE for h in handles)
    log = log_events(owners.broker.channel(), owners.broker.topology)
    assert finals(log) == {h.job_id: 1 for h in handles}


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_the_owner_survives_a_broker_restart_and_serves_jobs_afterwards(
    private_broker: PrivateNode, tmp_path: Path
) -> None:
    """Given an owner with a backlog on a private node, when the node is killed -9 and restarted,
    then the owner process lives on, reconnects, finishes the backlog and runs new jobs."""
    settings = make_settings(private_broker.url, "restart")
    topology = build_topology(settings, Policy())
    with channel(private_broker.url) as ch:
        declare(ch, topology)
    owner = start_owner(
        private_broker.url, "restart", tmp_path, "--backend", "synthetic", "--shot-rate", "200"
    )
    try:
        client = QPUClient(settings=settings)
        wait_active(client)
        backlog = [client.submit(analog_sequence(2), 40, job_class="production") for _ in range(20)]
        assert backlog[0].result(timeout=60).state is JobState.DONE
        private_broker.kill()
        with contextlib.suppress(Exception):  # its connection died with the node
            client.close()
        private_broker.restart()
        client = QPUClient(settings=settings)
        wait_active(client, timeout_s=60)
        assert owner.process.poll() is None, owner.log()[-3000:]
        assert client.submit(analog_sequence(2), 10).result(timeout=60).state is JobState.DONE
        ch = connect(private_broker.url, name="test-reader").channel()
        ended = wait_until(
            lambda: {h.job_id for h in backlog} <= set(finals(log_events(ch, topology))),
            60,
            "every job of the backlog to end",
        )
        assert ended
        client.close()
    finally:
        owner.stop()
