"""Hostile submitters with AMQP users of their own (issue 12 items 1 and 3).

A private node (the shared node's users are never touched) with users ``guest``, who runs the
owners and is the operator, and ``mallory``, another submitter. Observed from outside only.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from brokers.bootstrap import PrivateNode
from brokers.connection import channel
from brokers.settings import Settings
from brokers.topology import Topology, build_topology, declare
from producers.client import QPUClient
from schemas import CommandName, ErrorCode, Event, JobState
from schemas.policy import Policy
from tests.conftest import make_settings
from tests.support.hostile import (
    FAST_LEASE,
    confirmed_channel,
    finals,
    job_props,
    log_events,
    new_job,
    publish_job,
)
from tests.support.owners import OwnerProcess, start_owner, wait_active
from tests.support.sequences import analog_sequence

pytestmark = pytest.mark.chaos


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
def two_user_node(rabbitmq_server: Path) -> Iterator[PrivateNode]:
    """One private node for this module's two-user tests, with user mallory added (without a
    rabbitmq-server binary the tests fail, saying what to install: `rabbitmq_server`)."""
    node = PrivateNode(rabbitmq_server).start()
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
