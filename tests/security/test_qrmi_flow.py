"""The unmodified qrmi wheel drives qsched through the gateway, with real MUNGE.

Real parts: munged on libmunge's default socket (the wheel's ``munge_encode`` takes no socket),
unix users created by the test running QRMI's PasqalLocal flow as themselves
(`tests/security/qrmi_user.py`), a real `qsched gateway serve` process decoding each request's
credential through libmunge, a real owner on the shared broker (its own namespace).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from brokers.connection import connect
from brokers.topology import build_topology, declare
from producers.client import QPUClient
from schemas.policy import Policy
from tests.conftest import make_settings
from tests.support.environment import child_env
from tests.support.gateway import request, start_gateway_process
from tests.support.munged import default_munged, munge_installed, stop
from tests.support.owners import register_allocation, start_owner, wait_active
from tests.support.sequences import analog_sequence
from tests.support.unixusers import (
    USER_PYTHON,
    can_create_users,
    create_user,
    delete_user,
    run_as,
    user_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.munge, pytest.mark.timeout(600)]
SCRIPT = str(Path(__file__).with_name("qrmi_user.py"))
ALLOCATIONS = ("4242", "4243")  # alice's, bob's
NAME = "QSCHED_QPU"  # the QRMI resource name, as a site's qrmi_config.json would call it


@dataclass
class Site:
    """The gateway, its owner and two unix users."""

    port: int
    gateway_log: Path
    alice: str
    bob: str
    sequence_file: Path

    def run(self, user: str, *args: str) -> dict[str, object]:
        """Run QRMI's flow as `user` (configured as Slurm's QRMI plugin would, in the user's
        allocation: 4242 alice's, 4243 bob's, registered as the prolog would)."""
        uid = _uid(user)
        allocation = ALLOCATIONS[0] if user == self.alice else ALLOCATIONS[1]
        env = user_env(
            user,
            {
                f"{NAME}_QRMI_WARDEN_URL": f"http://127.0.0.1:{self.port}",
                "QRMI_JOB_UID": str(uid),
                "QRMI_JOB_ID": allocation,
            },
        )
        done = run_as(user, [USER_PYTHON, SCRIPT, *args], env, timeout_s=240)
        assert done.returncode == 0, f"{args} as {user}: {done.stderr[-3000:]}"
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _uid(user: str) -> int:
    return pwd.getpwnam(user).pw_uid


@pytest.fixture(scope="module")
def site(broker_handle: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if not (munge_installed() and can_create_users()):
        pytest.fail(
            "QRMI tests need root and MUNGE (run infra/slurm/deps.sh or `make slurm-deps`)",
            pytrace=False,
        )
    url = broker_handle.url  # type: ignore[attr-defined]
    workdir = tmp_path_factory.mktemp("qrmi-site")
    namespace = f"q{os.getpid()}"
    with contextlib.ExitStack() as cleanup:
        cleanup.enter_context(default_munged())
        users = [create_user("qra"), create_user("qrb")]
        for user in users:
            cleanup.callback(delete_user, user)
        shared = Path(tempfile.mkdtemp(prefix="qsched-qrmi-"))
        os.chmod(shared, 0o755)
        sequence_file = shared / "sequence.json"
        sequence_file.write_text(analog_sequence())
        os.chmod(sequence_file, 0o644)
        policy = workdir / "policy.toml"
        # guest: the gateway's broker user, and the operator that registers the allocations
        policy.write_text('gateway_users = ["guest"]\noperators = ["guest"]\n')
        settings = make_settings(url, namespace)
        topology = build_topology(settings, Policy())
        connection = connect(url)
        declare(connection.channel(), topology)
        connection.close()
        owner = start_owner(
            url,
            namespace,
            workdir,
            "--backend",
            "synthetic",
            "--policy",
            str(policy),
            env={"QSCHED_OWNER__SHOT_RATE_HZ": "200"},
        )
        cleanup.callback(owner.stop)
        with QPUClient(settings=settings, validate_locally=False) as client:
            wait_active(client, timeout_s=90)
            for allocation, user in zip(ALLOCATIONS, users, strict=True):
                register_allocation(client, allocation, user=user)
        gateway_log = workdir / "gateway.log"
        process, port = start_gateway_process(
            child_env(url, namespace), gateway_log, "--policy", str(policy)
        )
        cleanup.callback(stop, process)
        yield Site(port, gateway_log, users[0], users[1], sequence_file)


def test_qrmis_own_flow_runs_against_the_gateway(site: Site) -> None:
    """Given the unmodified qrmi client as alice, then acquire, target, a task whose counts sum
    to its shots, a stopped task Cancelled, release, and a task after release refused."""
    out = site.run(site.alice, "flow", NAME, str(site.sequence_file), "30")
    assert out["accessible"] == "online"
    assert out["token"] and out["device"] == "AnalogDevice"
    assert out["status"] == "TaskStatus.Completed"
    assert out["counts"] == 30
    assert out["stopped"] == "TaskStatus.Cancelled"
    assert "job.done" in str(out["logs"])
    refused = str(out["after_release"])
    assert "403" in refused and "SESSION_ENDED" in refused


def test_two_unix_users_never_see_each_others_tasks(site: Site) -> None:
    """Given a task of alice, then bob's qrmi client gets 404 for its status, result and stop,
    and the gateway logs the refusals with bob's uid."""
    alice = site.run(site.alice, "hold", NAME, str(site.sequence_file), "5")
    peek = site.run(site.bob, "peek", NAME, str(alice["task"]))
    for what in ("status", "result", "stop"):
        assert "404" in str(peek[what]), peek
    assert f"uid {_uid(site.bob)} ({site.bob})" in site.gateway_log.read_text()


def test_a_replayed_or_forged_credential_is_refused_by_munged(site: Site) -> None:
    """Given a real credential of alice used twice, and a forged one, then the second use and
    the forgery get 401 and nothing is created."""
    made = run_as(site.alice, ["munge", "-n"], user_env(site.alice), timeout_s=30)
    credential = made.stdout.strip()
    first = request(site.port, "GET", "/jobs", headers={"X-Munge-Cred": credential})
    again = request(site.port, "GET", "/jobs", headers={"X-Munge-Cred": credential})
    forged = request(
        site.port, "GET", "/jobs", headers={"X-Munge-Cred": credential[:-8] + "AAAAAAA:"}
    )
    assert first[0] == 200
    assert again == (401, {"detail": "MUNGE credential replayed", "code": "CREDENTIAL_REPLAYED"})
    assert forged[0] == 401 and forged[1]["code"] == "CREDENTIAL_INVALID"
