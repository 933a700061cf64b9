"""MUNGE identity end to end: real munged, real `qsched auth serve`, a private RabbitMQ node with
the http + cache auth backends (configured from the shipped `infra/rabbitmq/auth-http.conf`), a
real `qsched owner`, and unix users created by the test running the client as themselves.

The shared broker is never touched: plugins and auth backends are enabled on the private node only.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pika
import pika.exceptions
import pytest

from brokers import munge
from brokers.bootstrap import PrivateNode, find_server, free_port
from brokers.connection import connect
from brokers.settings import load_settings
from brokers.topology import build_topology, declare
from producers.client import QPUClient
from schemas.enums import CommandName, JobState
from schemas.policy import Policy
from tests.support.munged import (
    AUTH_PLUGINS,
    Munged,
    auth_http_config,
    munge_installed,
    start_auth,
    stop,
)
from tests.support.owners import OwnerProcess, start_owner, wait_active, wait_running
from tests.support.unixusers import (
    USER_PYTHON,
    can_create_users,
    create_group,
    create_user,
    delete_group,
    delete_user,
    run_as,
    user_env,
)

# Module setup (private node, owner, munged, service, users) runs inside the first test.
pytestmark = [pytest.mark.integration, pytest.mark.munge, pytest.mark.timeout(600)]
SCRIPT = str(Path(__file__).with_name("as_user.py"))
NS = "msec"


@dataclass
class Site:
    """Everything one module of tests shares."""

    node: PrivateNode
    munged: Munged
    auth_port: int
    auth: subprocess.Popen[bytes]
    auth_log: Path
    owner: OwnerProcess
    alice: str
    bob: str
    olga: str
    workdir: Path

    @property
    def url(self) -> str:
        """The broker URL without credentials (the client adds user and credential)."""
        return f"amqp://127.0.0.1:{self.node.amqp_port}/%2F"

    def env(self, user: str) -> dict[str, str]:
        return user_env(
            user,
            {
                "QSCHED_AUTH": "munge",
                "QSCHED_AMQP_URL": self.url,
                "QSCHED_NAMESPACE": NS,
                "QSCHED_MUNGE_SOCKET": str(self.munged.socket),
            },
        )

    def run(self, user: str, *args: str, timeout_s: float = 180.0) -> dict[str, object]:
        """Run `as_user.py` as `user`; its JSON answer."""
        done = run_as(user, [USER_PYTHON, SCRIPT, *args], self.env(user), timeout_s)
        assert done.returncode == 0, f"{args} as {user}: {done.stderr[-3000:]}"
        return json.loads(done.stdout.strip().splitlines()[-1])

    def guest(self) -> QPUClient:
        settings = load_settings(amqp_url=self.node.url, namespace=NS)
        return QPUClient(settings=settings, validate_locally=False)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    # Checked here, not at import: a run that deselects the `munge` tests must still collect.
    if not (munge_installed() and can_create_users() and find_server()):
        pytest.fail(
            "MUNGE tests need root, MUNGE (run infra/slurm/deps.sh or `make slurm-deps`) and "
            "rabbitmq-server",
            pytrace=False,
        )
    workdir = tmp_path_factory.mktemp("munge-site")
    with contextlib.ExitStack() as cleanup:  # undone in reverse, also when setup fails half-way
        ops = create_group("qops")
        cleanup.callback(delete_group, ops)
        users = [create_user("qa"), create_user("qb"), create_user("qo", groups=(ops,))]
        for user in users:
            cleanup.callback(delete_user, user)
        munged = Munged().start()
        cleanup.callback(munged.stop)
        policy = workdir / "policy.toml"
        policy.write_text(f'operators = ["guest"]\noperator_group = "{ops}"\n')
        port = free_port()
        auth_log = workdir / "auth.log"
        auth = start_auth(policy, port, munged.socket, auth_log, NS)
        server = find_server()
        assert server is not None
        node = PrivateNode(server, config_lines=auth_http_config(port), plugins=AUTH_PLUGINS)
        cleanup.callback(node.stop)
        node.start()
        ch = connect(node.url).channel()
        declare(ch, build_topology(load_settings(namespace=NS), Policy()))
        ch.connection.close()
        owner = start_owner(
            node.url,
            NS,
            workdir,
            "--backend",
            "synthetic",
            "--policy",
            str(policy),
            env={"QSCHED_OWNER__SHOT_RATE_HZ": "20"},
        )
        cleanup.callback(owner.stop)
        built = Site(node, munged, port, auth, auth_log, owner, *users, workdir=workdir)
        cleanup.callback(lambda: stop(built.auth))  # the service may be restarted by a test
        with built.guest() as client:
            wait_active(client, timeout_s=90)
        yield built


def test_two_unix_users_submit_with_munge_and_get_their_results(site: Site) -> None:
    alice = site.run(site.alice, "submit", "2")
    bob = site.run(site.bob, "submit", "2")
    peek = site.run(site.alice, "fetch", str(bob["job_ids"][0]))  # type: ignore[index]
    assert peek["error"] == "CommandRefused" and "may not result" in str(peek["message"])
    assert alice == {
        "user": site.alice,
        "states": ["DONE", "DONE"],
        "job_ids": alice["job_ids"],
        "shots": [20, 20],
    }
    assert bob["states"] == ["DONE", "DONE"] and bob["user"] == site.bob
    log = site.auth_log.read_text()
    assert "refused" not in log, log


def test_a_munge_user_gets_only_least_privilege(site: Site) -> None:
    seen = site.run(site.alice, "matrix", site.bob)
    print("matrix", json.dumps(seen, indent=1))
    assert seen == {
        "publish a job as self": "ok",
        "publish a job as another user_id": "406",
        "declare own reply queue": "ok",
        "declare another user's reply queue": "403",
        "consume another user's reply queue": "403",
        "consume the event log": "403",
        "consume a class queue": "403",
        "send control.pause": "403",
        "send control.cancel": "ok",
        "publish to the event exchange": "403",
        "declare a queue in the namespace": "403",
    }


def test_cancel_only_own_jobs_and_control_only_for_the_operator_group(site: Site) -> None:
    submitted = site.run(site.bob, "submit-nowait", "1", "2000")  # 100 s at 20 shots/s
    job_id = str(submitted["job_ids"][0])  # type: ignore[index]
    with site.guest() as guest:
        wait_running(guest, job_id, timeout_s=60)
        refused = site.run(site.alice, "cancel", job_id)
        assert refused["ok"] is False and "may not cancel" in str(refused["message"])
        assert guest.control(CommandName.STATUS).status.running.job_id == job_id  # type: ignore[union-attr]
        pause = site.run(site.alice, "control", "pause")
        assert pause == {"ok": False, "error": "NotAuthorised", "message": pause["message"]}
        olga = site.run(site.olga, "control", "pause")
        assert olga["ok"] is True, olga
        assert site.run(site.olga, "control", "resume")["ok"] is True
        own = site.run(site.bob, "cancel", job_id)
        assert own["ok"] is True, own
        result = guest.fetch_result(job_id)
        deadline = time.monotonic() + 30
        while result is None and time.monotonic() < deadline:
            guest.poll(0.2)
            result = guest.fetch_result(job_id)
        assert result is not None and result.state is JobState.CANCELED


def _login(url: str) -> str:
    try:
        pika.BlockingConnection(pika.URLParameters(url)).close()
        return "ok"
    except pika.exceptions.ProbableAuthenticationError:
        return "refused"


def test_replayed_expired_and_other_uid_credentials_are_refused(site: Site) -> None:
    assert site.run(site.alice, "replay") == {"first": "ok", "again": "refused"}
    assert site.run(site.alice, "expired") == {"expired": "refused"}
    roots = munge.with_credentials(site.url, site.alice, munge.encode(site.munged.socket))
    assert _login(roots) == "refused"  # a credential of uid 0 presented as alice
    log = site.auth_log.read_text()
    assert re.search("Replayed credential|replay", log) and "Expired credential" in log
    assert "credential of uid 0" in log


def test_auth_service_down_gives_one_clear_error_and_the_owner_keeps_running(site: Site) -> None:
    stop(site.auth)
    try:
        answer = site.run(site.alice, "connect")
        assert answer["error"] == "NotAuthorised"
        assert "qsched auth serve" in str(answer["message"]) and site.alice in str(
            answer["message"]
        )
        assert site.owner.process.poll() is None
        with site.guest() as guest:
            assert guest.control(CommandName.STATUS).ok
    finally:
        site.auth = start_auth(
            site.workdir / "policy.toml", site.auth_port, site.munged.socket, site.auth_log, NS
        )
    assert site.run(site.alice, "connect") == {"error": None}
