"""A RabbitMQ cluster that loses a node (issue 12, What to build 5).

Three private nodes on loopback form one cluster; qsched runs with ``broker.queue_type =
quorum`` (intake, control, dead, snapshot and device queues as quorum queues on 3 nodes, the
event log a stream on 3 nodes) and several broker URLs. Under load from submitter threads:
kill -9 the node the active owner is connected to, bring it back, then kill -9 the node leading
the event stream. Owners and clients reconnect to the survivors; every submitted job ends DONE
exactly once in the log with all its shots: the invariant checker over the replicated log,
against every job sent, with what was left in the queues once the owners stopped.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from brokers.connection import channel, connect, wait_reachable
from brokers.topology import build_topology, declare
from producers.client import QPUClient
from schemas import JobRequest, JobState, Policy
from tests.chaos.cluster import Cluster, ClusterNode
from tests.conftest import make_settings
from tests.support.hostile import log_events
from tests.support.invariants import check
from tests.support.owners import OwnerProcess, start_owner, wait_active
from tests.support.reliability import record
from tests.support.sequences import analog_sequence
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.reliability]

NS = "cluster"
QUORUM = {"QSCHED_BROKER__QUEUE_TYPE": "quorum", "QSCHED_OWNER__LEASE_RETRY_S": "0.2"}
SEQ = analog_sequence(2)
JOBS_PER_SUBMITTER = 120  # in pairs every 1.5 s: load for about 90 s, through both kills
SUBMITTERS = 2


class Submitter(threading.Thread):
    """Submits jobs in small batches; on any broker error reconnects and sends the batch again
    (at-least-once: the owner drops a copy of an accepted job id)."""

    def __init__(self, urls: str) -> None:
        super().__init__(daemon=True)
        self.settings = make_settings(urls, NS, broker={"queue_type": "quorum"})
        self.sent: list[JobRequest] = []
        self.resent = 0
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            client = QPUClient(settings=self.settings)
            jobs = [client.build_job(SEQ, 20) for _ in range(JOBS_PER_SUBMITTER)]
            for start in range(0, len(jobs), 2):
                batch = jobs[start : start + 2]
                deadline = time.monotonic() + 120
                while True:
                    try:
                        client.submit_many(batch)
                        break
                    except Exception:  # the node under the client died: go to a survivor
                        assert time.monotonic() < deadline, "no node took the batch for 120 s"
                        self.resent += 1
                        time.sleep(0.3)
                        try:
                            client.reconnect()
                        except Exception:
                            continue
                self.sent.extend(batch)
                time.sleep(1.5)
            client.close()
        except BaseException as exc:
            self.failure = exc


def _finals(cluster: Cluster, settings: object) -> Counter[str]:
    topology = build_topology(settings, Policy())  # type: ignore[arg-type]
    conn = connect(cluster.urls(1), name="test-cluster-reader")
    try:
        return Counter(
            e.job_id
            for e in log_events(conn.channel(), topology)
            if e.job_id and e.result is not None and e.result.state.is_final
        )
    finally:
        if conn.is_open:
            conn.close()


def _owner_node(cluster: Cluster) -> ClusterNode:
    return wait_until(
        lambda: next(
            (
                n
                for n in cluster.nodes
                if n.process is not None
                and any(c.startswith("qsched-owner") for c in cluster.connections_on(n))
            ),
            None,
        ),
        "a node holding the owners' connections",
        60,
    )


def _kill_and_recover(cluster: Cluster, node: ClusterNode, client_urls: str, what: str) -> float:
    """kill -9 `node`, wait for an active owner again, restart the node; the gap in seconds."""
    killed_at = time.monotonic()
    node.kill()
    wait_until(lambda: _active(client_urls), f"an active owner after losing {what}", 120)
    gap_s = time.monotonic() - killed_at
    cluster.restart(node)
    assert wait_reachable(node.url, 90), f"{node.node_name} did not come back"
    return gap_s


def _active(urls: str) -> bool:
    """Whether an owner answers `status` (publishes are nacked while a queue elects a leader)."""
    client = _client(urls)
    if client is None:
        return False
    try:
        wait_active(client, timeout_s=5)
        return True
    except Exception:
        return False
    finally:
        client.close()


def _client(urls: str) -> QPUClient | None:
    try:
        return QPUClient(settings=make_settings(urls, NS, broker={"queue_type": "quorum"}))
    except Exception:
        return None


@pytest.mark.timeout(1200)
def test_a_cluster_losing_the_owners_node_then_the_stream_leader_loses_and_duplicates_nothing(
    tmp_path: Path, rabbitmq_server: Path
) -> None:
    cluster = Cluster.start(rabbitmq_server)
    owners: list[OwnerProcess] = []
    try:
        settings = make_settings(cluster.urls(0), NS, broker={"queue_type": "quorum"})
        topology = build_topology(settings, Policy())
        with channel(cluster.nodes[0].url) as ch:
            declare(ch, topology)
        for _ in range(2):
            owners.append(
                start_owner(
                    cluster.urls(0),
                    NS,
                    tmp_path,
                    "--backend",
                    "synthetic",
                    "--shot-rate",
                    "400",
                    env=QUORUM,
                )
            )
        client_urls = cluster.urls(1)
        wait_until(lambda: _active(client_urls), "an active owner", 120)
        submitters = [Submitter(cluster.urls(1 + n % 2)) for n in range(SUBMITTERS)]
        for submitter in submitters:
            submitter.start()
        wait_until(lambda: len(_finals(cluster, settings)) >= 15, "15 jobs done", 120)

        owner_node = _owner_node(cluster)
        assert all(s.is_alive() for s in submitters), "the load ended before the first kill"
        gap_owner_node_s = _kill_and_recover(cluster, owner_node, client_urls, "the owner's node")
        wait_until(lambda: len(_finals(cluster, settings)) >= 50, "50 jobs done", 180)

        leader = cluster.leader_of(topology.events_stream)
        assert all(s.is_alive() for s in submitters), "the load ended before the second kill"
        gap_leader_s = _kill_and_recover(cluster, leader, client_urls, "the stream leader")

        for submitter in submitters:
            submitter.join(timeout=300)
            assert submitter.failure is None, repr(submitter.failure)
        sent = {job.job_id for s in submitters for job in s.sent}
        assert len(sent) == SUBMITTERS * JOBS_PER_SUBMITTER
        # Wait for the jobs to end without failing here: what did not end by the deadline is
        # counted as lost by the checker and recorded before anything is asserted.
        deadline = time.monotonic() + 300
        while not sent <= set(_finals(cluster, settings)) and time.monotonic() < deadline:
            time.sleep(1.0)  # each look reads the whole log; the deadline bounds the wait
        crashes = sum(o.process.poll() is not None for o in owners)
        for owner in owners:
            owner.stop()
        conn = connect(cluster.urls(2), name="test-cluster-results")
        log = log_events(conn.channel(), topology)
        queues = [*map(topology.job_queue, topology.class_names), topology.control_queue]
        ch = conn.channel()
        left = sum(ch.queue_declare(q, passive=True).method.message_count for q in queues)
        conn.close()
        # The submitters are threads that send and never wait for results: delivery is not
        # checked (received=None); every other invariant is, against every job they sent.
        verdict = check(log, sent, None, left)
        record(
            "3-node cluster loses a node",
            verdict=verdict,
            owner_crashes=crashes,
            worst_gap_s=max(gap_owner_node_s, gap_leader_s),
            note=(
                "quorum queues + 3-replica stream; kill -9 of the owners' node "
                f"(owner active again after {gap_owner_node_s:.1f} s), then of the stream leader "
                f"({gap_leader_s:.1f} s); {sum(s.resent for s in submitters)} batches re-sent; "
                f"{verdict.activations} activations"
            ),
        )
        assert verdict.ok, verdict.problems[:20]
        states = {e.job_id: e.result for e in log if e.job_id in sent and e.result is not None}
        assert all(
            r.state is JobState.DONE and sum(r.counts.values()) == 20 for r in states.values()
        )
        assert not crashes, [o.log()[-2000:] for o in owners]
        print(
            f"cluster: {len(sent)} jobs, 0 lost, 0 duplicated, "
            f"{sum(s.resent for s in submitters)} batches re-sent; active owner again "
            f"{gap_owner_node_s:.1f} s after losing its node, {gap_leader_s:.1f} s after losing "
            f"the stream leader"
        )
    finally:
        for owner in owners:
            owner.stop()
        cluster.stop()
