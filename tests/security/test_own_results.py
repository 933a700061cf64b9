"""Submitters read their own results and histories through the owner, and nobody else's.

Two broker users with the submitter role's least privilege (they may not read the event log) and
a real owner on a private node: A gets A's result and history (SDK and CLI, by id prefix); A
asking for B's job is refused with no data, by full id and by prefix.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from brokers.bootstrap import PrivateNode
from brokers.connection import connect
from brokers.settings import load_settings
from brokers.topology import build_topology, declare
from producers.client import QPUClient
from producers.errors import CommandRefused
from producers.results import UnknownToOwner, fetch_history_from_owner, fetch_result_from_owner
from schemas.enums import CommandName, ErrorCode, JobState
from schemas.policy import Policy
from tests.security.access import consume, outcome
from tests.security.test_broker_users import NS, add, url_of
from tests.support.environment import client_env, run_group
from tests.support.owners import QSCHED, start_owner, wait_active
from tests.support.sequences import analog_sequence

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]  # a private node under load


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_a_submitter_reads_its_own_results_and_histories_and_is_refused_anothers(
    private_broker: PrivateNode, tmp_path: Path
) -> None:
    topology = build_topology(load_settings(namespace=NS), Policy())
    ch = connect(private_broker.url).channel()
    declare(ch, topology)
    ch.connection.close()
    urls = {
        user: url_of(private_broker, user, add(private_broker, user, "submitter"))
        for user in ("alice", "bob")
    }
    owner = start_owner(private_broker.url, NS, tmp_path, "--backend", "synthetic")
    try:
        clients = {
            user: QPUClient(
                settings=load_settings(amqp_url=url, namespace=NS), validate_locally=False
            )
            for user, url in urls.items()
        }
        wait_active(clients["alice"], timeout_s=90)
        jobs = {
            user: client.submit(analog_sequence(2), 10, job_class="development")
            for user, client in clients.items()
        }
        results = {user: handle.result(timeout=60) for user, handle in jobs.items()}
        a_job, b_job = jobs["alice"].job_id, jobs["bob"].job_id
        assert outcome(urls["alice"], consume(topology.events_stream, stream=True)) == "403"

        # A new client of alice's (no result in hand): her result and history, from the owner.
        with QPUClient(settings=load_settings(amqp_url=urls["alice"], namespace=NS)) as alice:
            assert alice.fetch_result(a_job) == results["alice"]
            assert fetch_result_from_owner(alice, a_job[:8])[0] == results["alice"]
            topics = [e.topic for e in fetch_history_from_owner(alice, a_job)]
            assert topics[0] == "job.accepted" and topics[-1] == "job.done", topics

            # Bob's job: refused, no data, by full id; by prefix it does not exist for her.
            for command in (CommandName.RESULT, CommandName.HISTORY):
                reply = alice.control(command, job_id=b_job, timeout=10)
                assert not reply.ok and reply.error is not None
                assert reply.error.code is ErrorCode.NOT_AUTHORISED, reply
                assert reply.result is None and reply.history is None and reply.queue is None
            with pytest.raises(CommandRefused, match="may not result"):
                alice.fetch_result(b_job)
            with pytest.raises(UnknownToOwner):
                fetch_history_from_owner(alice, b_job[:8])

        # The CLI as alice: her result and history by prefix; bob's history refused (exit 1).
        env = client_env(urls["alice"], NS)
        shown = run_group([QSCHED, "result", a_job[:8], "--json"], env, 120)
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["state"] == JobState.DONE.value
        history = run_group([QSCHED, "history", a_job[:8], "--json"], env, 120)
        assert history.returncode == 0, history.stderr
        assert json.loads(history.stdout)["job_id"] == a_job
        refused = run_group([QSCHED, "history", b_job, "--json"], env, 120)
        said = refused.stdout + refused.stderr
        assert refused.returncode == 1 and "may not history" in said, said
        assert "job.accepted" not in said and "trace" not in said  # no data of bob's job
        for client in clients.values():
            client.close()
    finally:
        owner.stop()
