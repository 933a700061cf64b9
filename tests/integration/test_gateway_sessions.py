"""A QRMI session's jobs are the session's: a job sent through the gateway into a session of an
allocation shows in `queue` with that session and its phase, and no ``job.context_mismatch``
is logged for it (issue 20, item 3: sessions visible in `queue`; before, the gateway's jobs,
which claim no allocation of their own, were taken as strangers to their own session).

A session belongs to its user and the allocation it names, verified against the owner's
allocation registry (issue 20, item 1): an unregistered allocation or another user's is
refused when the session opens; the session's jobs are its allocation's, with its account, and
end with it."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from schemas.enums import CommandName, ErrorCode
from schemas.events import JobAccepted, Topic, payload_of
from schemas.policy import load_policy
from schemas.reports import SessionPhase
from tests.support.gateway import FakeMunge, InProcessGateway, request
from tests.support.hostile import confirmed_channel, log_events
from tests.support.owners import register_allocation, wait_running
from tests.support.sequences import analog_sequence

pytestmark = pytest.mark.integration

ALICE, BOB = 1001, 1002
POLICY = 'gateway_users = ["guest"]\noperators = ["guest"]\n'


SHARED_OWNER_ARGS = ("--backend", "synthetic", "--shot-rate", "100")  # `shared_owner`
SHARED_OWNER_POLICY = POLICY


@pytest.fixture
def gateway(
    shared_owner: Any, tmp_path: Path
) -> Iterator[tuple[InProcessGateway, FakeMunge, Any, dict[str, str]]]:
    """A gateway on the module's owner, and this test's names: alice, bob and their allocations
    42 and 55 (and 77, never registered) are new to the owner (each name carries a suffix of
    this test's), so no job, session or allocation of another test is theirs."""
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(POLICY)
    tag = uuid.uuid4().hex[:8]
    names = {name: f"{name}-{tag}" for name in ("alice", "bob", "42", "55", "77")}
    client = shared_owner.client()
    # as the prolog would
    register_allocation(client, names["42"], account="chem", user=names["alice"])
    register_allocation(client, names["55"], account="physics", user=names["bob"])
    munge = FakeMunge()
    users = {ALICE: names["alice"], BOB: names["bob"]}
    served = InProcessGateway(shared_owner.broker.settings, load_policy(policy_file), users, munge)
    served.start()
    yield served, munge, shared_owner, names
    served.stop()


def test_a_gateway_job_is_in_its_session_in_queue_and_no_mismatch_is_logged(gateway: Any) -> None:
    """Given alice's QRMI session of allocation 42 and a job running ahead, when she submits
    through the gateway, then `queue` lists her job in her session (phase queued) and the log
    has no context mismatch for it."""
    served, munge, owners, names = gateway
    client = owners.client(validate_locally=False)
    blocker = client.submit(analog_sequence(2), 2000, job_class="production")  # canceled below
    wait_running(client, blocker.job_id)

    def call(method: str, path: str, **kw: Any) -> tuple[int, Any]:
        headers = {"X-Munge-Cred": munge.credential(ALICE)} | kw.pop("headers", {})
        return request(served.port, method, path, headers=headers, **kw)

    status, session = call(
        "POST", "/sessions", body={"user_id": str(ALICE), "slurm_job_id": names["42"]}
    )
    assert status == 200, session
    status, created = call(
        "POST",
        "/jobs",
        body={"sequence": analog_sequence(), "shots": 5},
        headers={"X-Warden-Session": session["id"]},
    )
    assert status == 200, created
    (entry,) = [e for e in client.queue() if e.user == names["alice"]]
    assert entry.session_id == session["id"] and entry.session_phase is SessionPhase.QUEUED
    blocker.cancel()
    topology = owners.broker.topology
    mismatches = [
        e
        for e in log_events(confirmed_channel(owners.broker.url), topology)
        if e.topic == Topic.JOB_CONTEXT_MISMATCH and e.job_id in (entry.job_id, blocker.job_id)
    ]
    assert mismatches == []


def test_an_ended_job_is_answered_to_its_submitter_only_also_from_what_the_owner_pushed(
    gateway: Any,
) -> None:
    """Given alice's job through the gateway that ended (the owner pushed its result to the
    gateway), then her polls read DONE with its counts every time, and bob's read 404 for it,
    whatever the gateway remembers."""
    served, munge, _, names = gateway

    def call(uid: int, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        headers = {"X-Munge-Cred": munge.credential(uid)} | kw.pop("headers", {})
        return request(served.port, method, path, headers=headers, **kw)

    status, session = call(
        ALICE, "POST", "/sessions", body={"user_id": str(ALICE), "slurm_job_id": names["42"]}
    )
    assert status == 200, session
    status, created = call(
        ALICE,
        "POST",
        "/jobs",
        body={"sequence": analog_sequence(), "shots": 7},
        headers={"X-Warden-Session": session["id"]},
    )
    assert status == 200, created
    number = created["id"]
    answers = [call(ALICE, "GET", f"/jobs/{number}") for _ in range(400)]
    done = [body for status, body in answers if status == 200 and body["status"] == "DONE"]
    assert done, answers[-1]
    for _ in range(3):
        status, again = call(ALICE, "GET", f"/jobs/{number}")
        assert status == 200 and again["status"] == "DONE"
        assert again["results"] == done[0]["results"]
        assert sum(json.loads(again["results"])["counter"].values()) == 7
        assert call(BOB, "GET", f"/jobs/{number}")[0] == 404


def _call(served: Any, munge: FakeMunge, uid: int, method: str, path: str, **kw: Any) -> Any:
    headers = {"X-Munge-Cred": munge.credential(uid)} | kw.pop("headers", {})
    return request(served.port, method, path, headers=headers, **kw)


def _until(served: Any, munge: FakeMunge, number: int, wanted: str) -> dict[str, Any]:
    """Poll alice's job until it reads `wanted` (fails after 30 s)."""
    deadline = time.monotonic() + 30
    while True:
        status, body = _call(served, munge, ALICE, "GET", f"/jobs/{number}")
        assert status == 200, body
        if body["status"] == wanted:
            return dict(body)
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def test_a_session_of_an_unregistered_or_another_users_allocation_is_refused(
    gateway: Any,
) -> None:
    """Given no registration of 77 and bob's allocation 55, when alice opens a session naming
    either, then 403 with UNKNOWN_ALLOCATION / NOT_YOUR_ALLOCATION naming it, and no session
    is opened (the log has none)."""
    served, munge, owners, names = gateway
    for allocation, code in (
        (names["77"], "UNKNOWN_ALLOCATION"),
        (names["55"], "NOT_YOUR_ALLOCATION"),
    ):
        status, body = _call(
            served,
            munge,
            ALICE,
            "POST",
            "/sessions",
            body={"user_id": str(ALICE), "slurm_job_id": allocation},
        )
        assert (status, body["code"]) == (403, code), body
        assert allocation in body["detail"]
    topology = owners.broker.topology
    events = log_events(confirmed_channel(owners.broker.url), topology)
    opened = [e for e in events if e.topic == Topic.SESSION_OPENED and e.user == names["alice"]]
    assert opened == []


def test_gateway_jobs_are_their_sessions_allocations_and_end_with_it(gateway: Any) -> None:
    """Given alice's QRMI session of allocation 42 (account chem) with one job running and one
    queued through the gateway, then both were accepted as allocation 42's on account chem;
    when 42 ends (the epilog), then both read CANCELED with ALLOCATION_ENDED (before: the
    default account, and the allocation's end left them alone)."""
    served, munge, owners, names = gateway
    status, session = _call(
        served,
        munge,
        ALICE,
        "POST",
        "/sessions",
        body={"user_id": str(ALICE), "slurm_job_id": names["42"]},
    )
    assert status == 200, session
    numbers = []
    for shots in (1000, 5):  # the first runs ten seconds, the second waits behind it
        status, created = _call(
            served,
            munge,
            ALICE,
            "POST",
            "/jobs",
            body={"sequence": analog_sequence(), "shots": shots},
            headers={"X-Warden-Session": session["id"]},
        )
        assert status == 200, created
        numbers.append(created["id"])
    _until(served, munge, numbers[0], "RUNNING")
    topology = owners.broker.topology
    accepted = [
        payload_of(e, JobAccepted).verified
        for e in log_events(confirmed_channel(owners.broker.url), topology)
        if e.topic == Topic.JOB_ACCEPTED and e.user == names["alice"]
    ]
    allocation_42 = [(v.allocation, v.account) for v in accepted if v is not None]
    assert allocation_42 == [(names["42"], "chem")] * 2
    reply = owners.client().control(CommandName.ALLOCATION_ENDED, allocation=names["42"])
    assert reply.ok, reply.message
    for number in numbers:
        _until(served, munge, number, "CANCELED")
    codes = [
        e.result.error.code
        for e in log_events(confirmed_channel(owners.broker.url), topology)
        if e.topic == Topic.JOB_CANCELED and e.user == names["alice"]
        if e.result is not None and e.result.error is not None
    ]
    assert codes == [ErrorCode.ALLOCATION_ENDED] * 2
