"""Hostile submitters and faults against the real owner (issue 12 items 1-4 and 7, issue 9 item 7).

Every test watches the owner from outside only: real `qsched owner` processes, a real broker,
and what a user or an operator can see (results, the event log, the dead-letter queue, the
device queue, whether the owner processes are alive). No test reads the owner's internals, so
these tests keep guarding the behaviour when the owner's insides are replaced.

Tests that need a second AMQP user run on a private node (the shared node's users are never
touched): ``guest`` runs the owners and is the operator, ``mallory`` is another submitter.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from brokers.bootstrap import PrivateNode, find_server
from brokers.connection import channel, connect
from brokers.settings import Settings
from brokers.stream import read_stream
from brokers.topology import CODE_HEADER, REASON_HEADER, Topology, build_topology, declare
from producers.client import QPUClient
from producers.errors import ResultTimeout
from schemas import CommandName, ErrorCode, Event, JobRequest, JobState, QPUState, decode_any
from schemas.codec import encode
from schemas.messages import ControlCommand, DeviceSpecs, StatusReport
from schemas.policy import Policy
from tests.conftest import OwnerHarness, make_settings
from tests.owners import OwnerProcess, start_owner, wait_active, wait_running
from tests.sequences import analog_sequence

pytestmark = pytest.mark.chaos

FAST_LEASE = {"QSCHED_OWNER__LEASE_RETRY_S": "0.2"}


# ---- helpers: what anyone outside the owner can see --------------------------------------------


def wait_until(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        pause.wait(0.2)


def log_events(channel: BlockingChannel, topology: Topology) -> list[Event]:
    """Every event of the namespace's stream so far."""
    found = []
    for record in read_stream(channel, topology.events_stream, "first"):
        message = decode_any(record.body, record.properties.type)
        assert isinstance(message, Event)
        found.append(message)
    return found


def finals(events: list[Event]) -> Counter[str]:
    """How many final events each job has in the log."""
    return Counter(
        e.job_id for e in events if e.job_id and e.result is not None and e.result.state.is_final
    )


def dead_letters(channel: BlockingChannel, queue: str) -> dict[str, dict[str, Any]]:
    """Headers of every message now in the dead-letter queue, by message id (left in the queue)."""
    found: dict[str, dict[str, Any]] = {}
    tags = []
    while True:
        method, props, _ = channel.basic_get(queue)
        if method is None:
            break
        tags.append(method.delivery_tag)
        found[props.message_id] = dict(props.headers or {})
    if tags:
        channel.basic_nack(tags[-1], multiple=True, requeue=True)
    return found


def job_props(**overrides: Any) -> pika.BasicProperties:
    """The properties a well-behaved submitter would send, with `overrides` applied."""
    values: dict[str, Any] = {
        "content_type": "application/x-msgpack",
        "type": JobRequest.type_name(),
        "delivery_mode": 2,
        "user_id": "guest",
        "priority": 0,
    }
    return pika.BasicProperties(**(values | overrides))


def publish_job(
    channel: BlockingChannel, topology: Topology, job: JobRequest, **overrides: Any
) -> None:
    """Publish `job` as raw bytes with chosen properties (confirmed, mandatory)."""
    props = job_props(message_id=job.job_id, **overrides)
    channel.basic_publish(topology.jobs_exchange, job.job_class, encode(job), props, mandatory=True)


def new_job(shots: int = 10, job_id: str | None = None) -> JobRequest:
    """A valid production job."""
    extra = {"job_id": job_id} if job_id else {}
    return JobRequest(job_class="production", shots=shots, sequence=analog_sequence(2), **extra)


def publish_command(
    channel: BlockingChannel, topology: Topology, reply_to: str, user: str = "guest"
) -> str:
    """Publish a `status` command with a chosen reply queue; returns its id."""
    command = ControlCommand(command=CommandName.STATUS)
    props = pika.BasicProperties(
        content_type="application/x-msgpack",
        type=ControlCommand.type_name(),
        message_id=command.command_id,
        delivery_mode=2,
        user_id=user,
        reply_to=reply_to,
    )
    channel.basic_publish(
        topology.control_exchange, "control.status", encode(command), props, mandatory=True
    )
    return command.command_id


def wait_running_somewhere(client: QPUClient, job_id: str, timeout_s: float) -> StatusReport:
    """`wait_running` that also waits through a failover (no owner answering for a while)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return wait_running(client, job_id, timeout_s=max(deadline - time.monotonic(), 1.0))
        except ResultTimeout:
            if time.monotonic() > deadline:
                raise


def owner_with_id(processes: list[OwnerProcess], owner_id: str) -> OwnerProcess:
    """The process whose owner id (``host:pid:tag``) is `owner_id`."""
    pid = int(owner_id.split(":")[-2])
    (found,) = [p for p in processes if p.pid == pid]
    return found


def confirmed_channel(url: str) -> BlockingChannel:
    """A channel with publisher confirms (its connection closes with the test process)."""
    ch = connect(url, name="test-hostile").channel()
    ch.confirm_delivery()
    return ch


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
            assert sum(result.counts.values()) == 10 and result.attempts >= 1
    refused = {j.job_id for j in bad if client.results[j.job_id].state is JobState.REJECTED}
    dead = dead_letters(owners.broker.channel(), topology.dead_queue)
    assert refused <= set(dead) and all(dead[i].get(REASON_HEADER) for i in refused)
    assert active.process.poll() is None, active.log()[-3000:]
    assert standby.process.poll() is None, standby.log()[-3000:]


# ---- item 2: replies that cannot be delivered, reply queues that are not the sender's ---------


def test_a_reply_queue_that_refuses_publishes_does_not_wedge_the_owner(
    owners: OwnerHarness,
) -> None:
    """Given a reply queue of the sender's own that nacks every publish, when a job and a command
    name it as reply_to, then the failed replies are logged and dropped, the owner never
    reconnects, the job still ends once in the log, and other jobs keep running."""
    owner = owners.start("--backend", "synthetic")
    client = owners.client()
    topology = owners.broker.topology
    wedge = owners.broker.declare_queue(
        f"{topology.namespace}.reply.guest.wedge",
        arguments={"x-max-length": 0, "x-overflow": "reject-publish"},
    )
    ch = confirmed_channel(owners.broker.url)
    command_id = publish_command(ch, topology, wedge)
    wedged = new_job()
    publish_job(ch, topology, wedged, reply_to=wedge)
    normal = [client.submit(analog_sequence(2), 10, job_class="production") for _ in range(3)]
    assert all(h.result(timeout=60).state is JobState.DONE for h in normal)
    reader = owners.broker.channel()
    log = wait_until(
        lambda: (
            (events := log_events(reader, topology)) and finals(events)[wedged.job_id] and events
        ),
        30,
        "the wedged job's final event",
    )
    assert finals(log)[wedged.job_id] == 1
    failed = {e.topic: e for e in log if e.topic.endswith(".reply_failed")}.keys()
    dropped = {e.data.get("correlation_id") for e in log if e.topic.endswith(".reply_failed")}
    assert {"job.reply_failed", "control.reply_failed"} <= set(failed)
    assert {wedged.job_id, command_id} <= dropped
    assert [e.topic for e in log].count("owner.active") == 1, "the owner reconnected"
    assert "lost the broker" not in owner.log()
    assert client.control(CommandName.STATUS).ok


def test_reply_to_the_device_queue_cannot_overwrite_the_device_specs(
    owners: OwnerHarness,
) -> None:
    """Given an owner, when a garbage message, a valid job and a command each name the device
    queue as reply_to, then all three are dead-lettered with a reason, none runs, and the device
    queue still holds the device specs."""
    owners.start("--backend", "synthetic")
    client = owners.client()
    topology = owners.broker.topology
    ch = confirmed_channel(owners.broker.url)
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
            (found := dead_letters(owners.broker.channel(), topology.dead_queue))
            and wanted <= set(found)
            and found
        ),
        30,
        f"dead letters for {wanted}",
    )
    assert all("reply_to" in str(dead[i].get(REASON_HEADER)) for i in wanted - {garbage_id})
    method, props, body = owners.broker.channel().basic_get(device, auto_ack=False)
    assert method is not None
    assert isinstance(decode_any(body, props.type), DeviceSpecs), props.type
    started = {
        e.job_id for e in log_events(owners.broker.channel(), topology) if e.topic == "job.started"
    }
    assert valid.job_id not in started and other_user.job_id not in started


# ---- item 4: repeated failover during one job -------------------------------------------------


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
    owners: OwnerHarness,
) -> None:
    """Given valid job bodies, when one is sent as text/plain, one with AMQP priority 200 and one
    without user_id, then none runs: each is dead-lettered with its reason (and answered
    REJECTED where the sender is known)."""
    owners.start("--backend", "synthetic")
    client = owners.client()
    topology = owners.broker.topology
    ch = confirmed_channel(owners.broker.url)
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
            (found := dead_letters(owners.broker.channel(), topology.dead_queue))
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
        e.job_id for e in log_events(owners.broker.channel(), topology) if e.topic == "job.started"
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


# ---- two AMQP users on a private node (item 1 trust, item 3 job ids) ---------------------------


@dataclass
class TwoUsers:
    """A private node with users guest (owners, operator) and mallory (another submitter)."""

    node: PrivateNode
    log_dir: Path
    owners: list[OwnerProcess] = field(default_factory=list)
    clients: list[QPUClient] = field(default_factory=list)
    namespace: str = ""

    def settings(self, user: str) -> Settings:
        """Settings of `user` on this test's namespace."""
        password = "guest" if user == "guest" else f"{user}-pw"
        url = self.node.url.replace("guest:guest", f"{user}:{password}")
        return make_settings(url, self.namespace, broker={"reply_expires_ms": 120_000})

    def client(self, user: str) -> QPUClient:
        """A client of `user` (closed at teardown)."""
        client = QPUClient(settings=self.settings(user))
        self.clients.append(client)
        return client

    def start_owner(self, wait: bool = True) -> OwnerProcess:
        """A `qsched owner` running as guest on this namespace."""
        owner = start_owner(
            self.node.url, self.namespace, self.log_dir, "--backend", "synthetic", env=FAST_LEASE
        )
        self.owners.append(owner)
        if wait:
            wait_active(self.client("guest"))
        return owner

    def topology(self) -> Topology:
        """Names of this test's namespace."""
        return build_topology(self.settings("guest"), Policy())

    def events(self) -> list[Event]:
        """The namespace's event log."""
        with channel(self.node.url) as reader:
            return log_events(reader, self.topology())


@pytest.fixture(scope="module")
def two_user_node() -> Iterator[PrivateNode]:
    """One private node for this module's two-user tests, with user mallory added."""
    server = find_server()
    if server is None:
        pytest.skip("needs the rabbitmq-server binary to run a private node")
    node = PrivateNode(server).start()
    try:
        ctl = str(node.server.with_name("rabbitmqctl"))
        for args in (
            ["add_user", "mallory", "mallory-pw"],
            ["set_permissions", "mallory", ".*", ".*", ".*"],
        ):
            subprocess.run(
                [ctl, "-n", node.node_name, *args], env=node._env(), check=True, capture_output=True
            )
        yield node
    finally:
        node.stop()


@pytest.fixture
def two_users(two_user_node: PrivateNode, tmp_path: Path) -> Iterator[TwoUsers]:
    """guest and mallory on a fresh namespace of the two-user node; owners stopped at teardown."""
    users = TwoUsers(two_user_node, tmp_path, namespace=f"h{uuid.uuid4().hex[:8]}")
    with channel(two_user_node.url) as ch:
        declare(ch, users.topology())
    yield users
    for owner in users.owners:
        owner.stop()
    for client in users.clients:
        client.close()


def test_another_users_bookkeeping_headers_are_ignored(two_users: TwoUsers) -> None:
    """Given mallory's job carrying attempt/preemptions/counts/user headers, then it runs as a
    fresh job of mallory's: attempt 1, no preemptions, all its shots measured by the QPU."""
    two_users.start_owner()
    mallory = two_users.client("mallory")
    topology = two_users.topology()
    ch = confirmed_channel(mallory.settings.amqp_url)
    job = new_job(shots=10)
    forged = {
        "x-qsched-attempt": 7,
        "x-qsched-preemptions": 99,
        "x-qsched-counts": {"11": 9},
        "x-qsched-user": "guest",
    }
    publish_job(
        ch, topology, job, user_id="mallory", reply_to=mallory.reply_queue_name, headers=forged
    )
    result = mallory.wait_result(job.job_id, timeout=60)
    assert result.state is JobState.DONE
    assert result.attempts == 1 and result.preemptions == 0
    assert sum(result.counts.values()) == 10
    started = [e for e in two_users.events() if e.topic == "job.started" and e.job_id == job.job_id]
    assert [e.user for e in started] == ["mallory"]
    assert started[0].data["attempt"] == 1


def test_a_job_id_belongs_to_the_user_who_first_submitted_it(two_users: TwoUsers) -> None:
    """Given guest's finished job and guest's queued job, when mallory submits jobs with those
    ids, then mallory's are refused DUPLICATE_JOB_ID and mallory never gets guest's results."""
    two_users.start_owner()
    guest, mallory = two_users.client("guest"), two_users.client("mallory")
    done = guest.submit(analog_sequence(2), 10, job_class="production").result(timeout=60)
    assert done.state is JobState.DONE
    assert guest.control(CommandName.PAUSE).ok
    queued = guest.submit(analog_sequence(2), 10, job_class="production")
    for victim in (done.job_id, queued.job_id):
        stolen = mallory.submit_request(new_job(job_id=victim)).result(timeout=30)
        assert stolen.state is JobState.REJECTED, stolen
        assert stolen.error is not None and stolen.error.code is ErrorCode.DUPLICATE_JOB_ID
        assert not stolen.counts
    assert guest.control(CommandName.RESUME).ok
    assert queued.result(timeout=60).state is JobState.DONE
    log = two_users.events()
    assert finals(log)[done.job_id] == 1 and finals(log)[queued.job_id] == 1
    assert not [e for e in log if e.job_id in (done.job_id, queued.job_id) and e.user == "mallory"]


def test_garbage_under_another_users_job_id_writes_no_event_for_that_job(
    two_users: TwoUsers,
) -> None:
    """Given guest's job waiting on a paused QPU, when mallory sends garbage whose message_id is
    that job's id and the owner then fails over, then no event about guest's job comes from
    mallory's message and guest's job still runs to DONE."""
    first = two_users.start_owner()
    two_users.start_owner(wait=False)
    guest = two_users.client("guest")
    mallory = two_users.client("mallory")
    assert guest.control(CommandName.PAUSE).ok
    victim = guest.submit(analog_sequence(2), 10, job_class="production")
    ch = confirmed_channel(mallory.settings.amqp_url)
    ch.basic_publish(
        two_users.topology().jobs_exchange,
        "production",
        b"\xc1 garbage",
        job_props(message_id=victim.job_id, user_id="mallory", reply_to=mallory.reply_queue_name),
        mandatory=True,
    )
    refusal = mallory.wait_result(victim.job_id, timeout=30)  # mallory hears about its own message
    assert refusal.state is JobState.REJECTED
    first.kill()  # the next owner rebuilds from the log
    assert guest.control(CommandName.RESUME, timeout=30).ok
    result = victim.result(timeout=60)
    assert result.state is JobState.DONE, result
    log = two_users.events()
    about_victim = [e for e in log if e.job_id == victim.job_id]
    assert not [e for e in about_victim if e.topic == "job.rejected"], about_victim
    assert finals(log)[victim.job_id] == 1
