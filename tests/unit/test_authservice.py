"""The auth service's decisions without HTTP or munged: a fake decoder stands in for unmunge."""

from __future__ import annotations

import pytest

from brokers import munge
from brokers.authservice import AuthService
from brokers.settings import load_settings
from schemas.policy import Policy

UIDS = {"alice": 1001, "bob": 1002}


class FakeMunged:
    """Decodes "cred-<uid>-<n>" once, like munged; "expired" and others are refused."""

    def __init__(self) -> None:
        self.decoded: set[str] = set()

    def __call__(self, credential: str) -> munge.Identity:
        if credential in self.decoded:
            raise munge.CredentialRefused("Replayed credential (17)")
        if not credential.startswith("cred-"):
            raise munge.CredentialRefused("Invalid credential format (9)")
        self.decoded.add(credential)
        return munge.Identity(uid=int(credential.split("-")[1]), gid=100, encoded_at=0, ttl_s=300)


@pytest.fixture
def service() -> tuple[AuthService, list[float]]:
    now = [0.0]
    settings = load_settings(namespace="qpu")
    built = AuthService(
        settings,
        Policy(operators=(), operator_group="ops"),
        FakeMunged(),
        groups_of=lambda user: {"ops"} if user == "olga" else set(),
        uid_of=UIDS.get,
        clock=lambda: now[0],
    )
    return built, now


def login(service: AuthService, user: str, credential: str) -> str:
    return service.user({"username": user, "password": credential})


def test_a_login_may_present_its_credential_twice_and_no_more(
    service: tuple[AuthService, list[float]],
) -> None:
    auth, _ = service
    assert login(auth, "alice", "cred-1001-a") == "allow"  # authentication
    assert login(auth, "alice", "cred-1001-a") == "allow"  # the cache's authorisation call
    assert login(auth, "alice", "cred-1001-a") == "deny"  # a replay


def test_after_the_window_munged_refuses_the_replay(
    service: tuple[AuthService, list[float]],
) -> None:
    auth, now = service
    assert login(auth, "alice", "cred-1001-b") == "allow"
    now[0] += 60
    assert login(auth, "alice", "cred-1001-b") == "deny"


def test_credentials_of_another_uid_or_user_are_refused(
    service: tuple[AuthService, list[float]],
) -> None:
    auth, _ = service
    assert login(auth, "alice", "cred-1002-c") == "deny"  # bob's credential as alice
    assert login(auth, "alice", "cred-1001-d") == "allow"
    assert login(auth, "bob", "cred-1001-d") == "deny"  # alice's credential reused as bob
    assert login(auth, "nobody-here", "cred-1001-e") == "deny"  # unknown unix user
    assert login(auth, "alice", "guest") == "deny"


def test_vhost_resource_and_topic_checks(service: tuple[AuthService, list[float]]) -> None:
    auth, _ = service
    base = {"username": "alice", "vhost": "/"}
    assert auth.vhost(base) == "allow" and auth.vhost(base | {"vhost": "other"}) == "deny"
    write_jobs = base | {"resource": "exchange", "name": "qpu.jobs", "permission": "write"}
    assert auth.resource(write_jobs) == "allow"
    assert auth.resource(write_jobs | {"vhost": "other"}) == "deny"
    read_log = base | {"resource": "queue", "name": "qpu.events.log", "permission": "read"}
    assert auth.resource(read_log) == "deny"
    assert auth.resource(read_log | {"username": "olga"}) == "allow"
    pause = base | {"resource": "topic", "name": "qpu.control", "permission": "write"}
    assert auth.topic(pause | {"routing_key": "control.pause"}) == "deny"
    assert auth.topic(pause | {"routing_key": "control.cancel"}) == "allow"
    assert auth.topic(pause | {"routing_key": "control.pause", "username": "olga"}) == "allow"
