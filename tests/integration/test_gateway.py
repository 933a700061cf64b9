"""The QRMI gateway over a real broker and owner, served in this process with a stand-in MUNGE
decoder (the `munge` tier runs the real munged and the real qrmi client:
tests/security/test_qrmi_flow.py): Warden's endpoints, sessions, two users, bad input."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from schemas.policy import load_policy
from tests.support.gateway import FakeMunge, InProcessGateway, request
from tests.support.owners import register_allocation
from tests.support.sequences import analog_sequence

pytestmark = pytest.mark.integration

ALICE, BOB = 1001, 1002
# guest: the gateway's broker user, and the operator that registers alice's allocation 42
POLICY = 'gateway_users = ["guest"]\noperators = ["guest"]\n'
SHARED_OWNER_ARGS = ("--backend", "synthetic", "--shot-rate", "200")  # `shared_owner`
SHARED_OWNER_POLICY = POLICY


@pytest.fixture
def gateway(shared_owner: Any, tmp_path: Path) -> Iterator[tuple[InProcessGateway, FakeMunge, Any]]:
    """A gateway on the module's owner whose alice and bob are new to it: their user names
    carry a suffix of this test's, so no job or session of another test is theirs."""
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(POLICY)
    tag = uuid.uuid4().hex[:8]
    users = {ALICE: f"alice-{tag}", BOB: f"bob-{tag}", 0: "root"}
    register_allocation(shared_owner.client(), "42", user=users[ALICE])  # as her prolog would
    munge = FakeMunge()
    served = InProcessGateway(shared_owner.broker.settings, load_policy(policy_file), users, munge)
    served.start()
    yield served, munge, shared_owner
    served.stop()


def _call(
    served: InProcessGateway, munge: FakeMunge, uid: int, method: str, path: str, **kw: Any
) -> tuple[int, Any]:
    headers = {"X-Munge-Cred": munge.credential(uid)} | kw.pop("headers", {})
    return request(served.port, method, path, headers=headers, **kw)


def _session(served: InProcessGateway, munge: FakeMunge, uid: int, allocation: str = "42") -> str:
    status, body = _call(
        served,
        munge,
        uid,
        "POST",
        "/sessions",
        body={"user_id": str(uid), "slurm_job_id": allocation},
    )
    assert status == 200, body
    return str(body["id"])


def _wait_final(
    served: InProcessGateway, munge: FakeMunge, uid: int, number: int
) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        status, body = _call(served, munge, uid, "GET", f"/jobs/{number}")
        assert status == 200, body
        if body["status"] not in ("PENDING", "RUNNING"):
            return dict(body)
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def test_the_warden_flow_runs_a_job_of_the_verified_user_in_its_session(gateway: Any) -> None:
    """Given a session of alice, when she submits through it, then the job runs as hers, its
    counts sum to its shots, and after the session is closed a new job is refused (403)."""
    served, munge, _ = gateway
    status, accessible = request(served.port, "GET", "/accessible")
    assert status == 200 and accessible["is_accessible"] is True
    status, specs = _call(served, munge, ALICE, "GET", "/qpu/specs")
    assert status == 200 and json.loads(specs["specs"])["name"]
    session = _session(served, munge, ALICE)
    job = {"sequence": analog_sequence(), "shots": 40}
    status, created = _call(
        served, munge, ALICE, "POST", "/jobs", body=job, headers={"X-Warden-Session": session}
    )
    assert status == 200, created
    assert isinstance(created["id"], int) and created["user_id"] == str(ALICE)
    done = _wait_final(served, munge, ALICE, created["id"])
    assert done["status"] == "DONE"
    assert sum(json.loads(done["results"])["counter"].values()) == 40
    status, _ = _call(served, munge, ALICE, "DELETE", f"/sessions/{session}")
    assert status == 200
    status, refused = _call(
        served, munge, ALICE, "POST", "/jobs", body=job, headers={"X-Warden-Session": session}
    )
    assert status == 403 and refused["code"] == "SESSION_ENDED"


def test_two_users_never_see_each_others_jobs_or_sessions(gateway: Any) -> None:
    """Given a job of alice, then bob gets 404 for it, 403 for her session, and an empty list."""
    served, munge, _ = gateway
    session = _session(served, munge, ALICE)
    status, created = _call(
        served,
        munge,
        ALICE,
        "POST",
        "/jobs",
        body={"sequence": analog_sequence(), "shots": 5},
        headers={"X-Warden-Session": session},
    )
    assert status == 200
    number = created["id"]
    assert _call(served, munge, BOB, "GET", f"/jobs/{number}")[0] == 404
    assert _call(served, munge, BOB, "POST", f"/jobs/{number}/cancel")[0] == 404
    assert _call(served, munge, BOB, "GET", f"/jobs/{number}/logs")[0] == 404
    status, listed = _call(served, munge, BOB, "GET", "/jobs")
    assert status == 200 and listed == []
    status, refused = _call(
        served,
        munge,
        BOB,
        "POST",
        "/jobs",
        body={"sequence": analog_sequence(), "shots": 5},
        headers={"X-Warden-Session": session},
    )
    assert status == 403 and refused["code"] == "NOT_YOUR_SESSION"
    assert _call(served, munge, BOB, "DELETE", f"/sessions/{session}")[0] == 403
    status, mine = _call(served, munge, ALICE, "GET", "/jobs")
    assert [j["id"] for j in mine] == [number]


def test_a_queued_job_is_canceled_and_its_logs_tell_its_history(gateway: Any) -> None:
    """Given a long job running and a second queued behind it, when the second is canceled,
    then it reads CANCELED at once and its logs name its acceptance and its end."""
    served, munge, _ = gateway
    session = _session(served, munge, ALICE)
    numbers = []
    for shots in (2000, 5):
        status, created = _call(
            served,
            munge,
            ALICE,
            "POST",
            "/jobs",
            body={"sequence": analog_sequence(), "shots": shots},
            headers={"X-Warden-Session": session},
        )
        assert status == 200, created
        numbers.append(created["id"])
    status, canceled = _call(served, munge, ALICE, "POST", f"/jobs/{numbers[1]}/cancel")
    assert status == 200 and canceled["status"] == "CANCELED"
    status, logs = _call(served, munge, ALICE, "GET", f"/jobs/{numbers[1]}/logs")
    assert status == 200
    assert "job.accepted" in logs["logs"] and "job.canceled" in logs["logs"]
    status, _ = _call(served, munge, ALICE, "POST", f"/jobs/{numbers[0]}/cancel")
    assert status == 200
    assert _wait_final(served, munge, ALICE, numbers[0])["status"] == "CANCELED"


def test_bad_requests_get_the_status_qrmi_expects_and_create_nothing(gateway: Any) -> None:
    """Given bad credentials, bodies, sessions and ids, then each gets its status with a JSON
    error, and alice still has no job."""
    served, munge, _ = gateway
    session = _session(served, munge, ALICE)
    job = {"sequence": analog_sequence(), "shots": 5}
    on_session = {"X-Warden-Session": session}
    cred = munge.credential(ALICE)
    assert request(served.port, "GET", "/jobs", headers={"X-Munge-Cred": cred})[0] == 200
    cases = [
        (request(served.port, "POST", "/jobs", job, on_session), 401, "CREDENTIAL_REQUIRED"),
        (
            request(served.port, "GET", "/jobs", headers={"X-Munge-Cred": cred}),
            401,
            "CREDENTIAL_REPLAYED",
        ),
        (
            request(
                served.port,
                "POST",
                "/jobs",
                job,
                {"X-Munge-Cred": munge.credential(ALICE, True)} | on_session,
            ),
            401,
            "CREDENTIAL_EXPIRED",
        ),
        (_call(served, munge, 4242, "GET", "/jobs"), 401, "UNKNOWN_UID"),
        (_call(served, munge, ALICE, "POST", "/jobs", body=job), 403, "SESSION_REQUIRED"),
        (
            _call(
                served,
                munge,
                ALICE,
                "POST",
                "/jobs",
                body=job,
                headers={"X-Warden-Session": "nope"},
            ),
            403,
            "UNKNOWN_SESSION",
        ),
        (
            _call(served, munge, ALICE, "POST", "/jobs", raw=b"{not json", headers=on_session),
            422,
            "INVALID_BODY",
        ),
        (
            _call(
                served, munge, ALICE, "POST", "/jobs", body={"sequence": "x"}, headers=on_session
            ),
            422,
            "INVALID_BODY",
        ),
        (
            _call(
                served,
                munge,
                ALICE,
                "POST",
                "/jobs",
                body={"sequence": "[1, 2]", "shots": 5},
                headers=on_session,
            ),
            422,
            "INVALID_BODY",
        ),
        (
            _call(
                served,
                munge,
                ALICE,
                "POST",
                "/jobs",
                body={"sequence": "{}", "shots": 5},
                headers=on_session,
            ),
            422,
            "INVALID_SEQUENCE",
        ),
        (_call(served, munge, ALICE, "GET", "/jobs/abc"), 422, "INVALID_JOB_ID"),
        (_call(served, munge, ALICE, "GET", "/jobs/999999"), 404, "UNKNOWN_JOB"),
        (
            _call(
                served,
                munge,
                BOB,
                "POST",
                "/sessions",
                body={"user_id": str(ALICE), "slurm_job_id": "1"},
            ),
            403,
            "NOT_AUTHORISED",
        ),
        (
            _call(
                served,
                munge,
                ALICE,
                "POST",
                "/sessions",
                body={"user_id": "x", "slurm_job_id": "1"},
            ),
            422,
            "INVALID_BODY",
        ),
    ]
    for (status, body), expected, code in cases:
        assert (status, body["code"]) == (expected, code), body
        assert isinstance(body["detail"], str) and body["detail"]
    status, listed = _call(served, munge, ALICE, "GET", "/jobs")
    assert status == 200 and listed == []


def test_a_huge_body_is_refused_before_it_is_read(gateway: Any) -> None:
    """Given a body declared larger than the limit, then 413 comes back without the gateway
    waiting for the body (none is sent), and a chunked one is cut off at the limit."""
    served, munge, _ = gateway
    import http.client

    limit = 4 * 1024 * 1024
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    connection.putrequest("POST", "/jobs")
    connection.putheader("X-Munge-Cred", munge.credential(ALICE))
    connection.putheader("Content-Length", str(limit + 1))
    connection.endheaders()  # no body follows: an answer proves it was not waited for
    response = connection.getresponse()
    assert response.status == 413 and json.loads(response.read())["code"] == "BODY_TOO_LARGE"
    connection.close()

    def chunks() -> Iterator[bytes]:
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    connection.request(
        "POST",
        "/jobs",
        body=chunks(),
        headers={"X-Munge-Cred": munge.credential(ALICE)},
        encode_chunked=True,
    )
    assert connection.getresponse().status == 413
    connection.close()


def test_two_gateways_give_the_same_answers_and_a_new_one_knows_everything(
    gateway: Any,
) -> None:
    """Given a job made through one gateway, then a second gateway (and one started after the
    first stopped) answers the same for it: the owner holds everything."""
    served, munge, owners = gateway
    session = _session(served, munge, ALICE)
    status, created = _call(
        served,
        munge,
        ALICE,
        "POST",
        "/jobs",
        body={"sequence": analog_sequence(), "shots": 7},
        headers={"X-Warden-Session": session},
    )
    assert status == 200
    first = _wait_final(served, munge, ALICE, created["id"])
    policy = served.link.policy
    other = InProcessGateway(owners.broker.settings, policy, served.users, munge).start()
    try:
        assert _wait_final(other, munge, ALICE, created["id"]) == first
        status, again = _call(
            other,
            munge,
            ALICE,
            "POST",
            "/jobs",
            body={"sequence": analog_sequence(), "shots": 3},
            headers={"X-Warden-Session": session},
        )
        assert status == 200 and again["id"] == created["id"] + 1
    finally:
        other.stop()
