"""qsched drives a QRMI resource: owner A (``--backend qrmi``) -> the real qrmi library -> gateway
B -> owner B on the emulator, two namespaces on this machine, real munged (the qrmi library's
credentials come from libmunge's default socket)."""

from __future__ import annotations

import contextlib
import os
import pwd
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from brokers.connection import connect
from brokers.topology import build_topology, declare
from producers.client import QPUClient
from schemas.enums import CommandName, JobState
from schemas.policy import Policy
from tests.conftest import make_settings
from tests.support.environment import child_env
from tests.support.gateway import start_gateway_process
from tests.support.munged import default_munged, munge_installed, stop
from tests.support.owners import (
    OwnerProcess,
    register_allocation,
    start_owner,
    wait_active,
    wait_running,
)
from tests.support.sequences import analog_sequence

pytestmark = [pytest.mark.integration, pytest.mark.munge, pytest.mark.timeout(600)]
NAME = "SITEB"


@dataclass
class Loop:
    """Namespace A (driving B through QRMI) and namespace B (the emulator behind a gateway)."""

    url: str
    ns_a: str
    ns_b: str
    workdir: Path
    a_env: dict[str, str]
    owners_a: list[OwnerProcess]

    def client(self, namespace: str) -> QPUClient:
        return QPUClient(settings=make_settings(self.url, namespace), validate_locally=False)

    def start_a(self) -> OwnerProcess:
        owner = start_owner(self.url, self.ns_a, self.workdir, "--backend", "qrmi", env=self.a_env)
        self.owners_a.append(owner)
        return owner


def _declare(url: str, namespace: str) -> None:
    connection = connect(url)
    declare(connection.channel(), build_topology(make_settings(url, namespace), Policy()))
    connection.close()


@pytest.fixture(scope="module")
def loop(broker_handle: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    if not munge_installed() or os.geteuid() != 0:
        pytest.fail("QRMI tests need root and MUNGE (`make slurm-deps`)", pytrace=False)
    url = broker_handle.url  # type: ignore[attr-defined]
    workdir = tmp_path_factory.mktemp("qrmi-loop")
    ns_a, ns_b = f"qa{os.getpid()}", f"qb{os.getpid()}"
    with contextlib.ExitStack() as cleanup:
        cleanup.enter_context(default_munged())
        for namespace in (ns_a, ns_b):
            _declare(url, namespace)
        policy_b = workdir / "policy-b.toml"
        policy_b.write_text('gateway_users = ["guest"]\noperators = ["guest"]\n')
        owner_b = start_owner(
            url,
            ns_b,
            workdir,
            "--backend",
            "emulator",
            "--shot-rate",
            "100",
            "--policy",
            str(policy_b),
        )
        cleanup.callback(owner_b.stop)
        with QPUClient(settings=make_settings(url, ns_b), validate_locally=False) as client:
            wait_active(client, timeout_s=90)
            # the allocation owner A's QRMI sessions name (QRMI_JOB_ID), of A's unix user on B
            register_allocation(client, "4242", user=pwd.getpwuid(os.getuid()).pw_name)
        process, port = start_gateway_process(
            child_env(url, ns_b), workdir / "gateway.log", "--policy", str(policy_b)
        )
        cleanup.callback(stop, process)
        a_env = {
            f"{NAME}_QRMI_WARDEN_URL": f"http://127.0.0.1:{port}",
            "QRMI_JOB_UID": str(os.getuid()),
            "QRMI_JOB_ID": "4242",
            "QSCHED_OWNER__QRMI_RESOURCE": NAME,
            "QSCHED_OWNER__QRMI_JOURNAL": str(workdir / "qrmi-journal"),
            "QSCHED_OWNER__LEASE_RETRY_S": "0.2",
        }
        built = Loop(url, ns_a, ns_b, workdir, a_env, [])
        cleanup.callback(lambda: [o.stop() for o in built.owners_a])
        built.start_a()
        with built.client(ns_a) as client:
            wait_active(client, timeout_s=90)
        yield built


def _b_jobs(loop: Loop) -> list[object]:
    with loop.client(loop.ns_b) as client:
        return list(client.control(CommandName.JOBS).jobs or [])


def test_a_job_of_a_runs_as_a_qrmi_task_on_b_and_its_counts_come_back(loop: Loop) -> None:
    """Given owner A on the qrmi backend, when a job is submitted to A, then it runs as a task
    on B's emulator (one job there, in A's session) and A's result has all its shots."""
    before = len(_b_jobs(loop))
    with loop.client(loop.ns_a) as client:
        result = client.submit(analog_sequence(), 25).result(timeout=120)
    assert result.state is JobState.DONE, result.error
    assert sum(result.counts.values()) == 25 and result.backend == "qrmi"
    jobs = _b_jobs(loop)
    assert len(jobs) == before + 1
    assert jobs[0].state is JobState.DONE  # type: ignore[attr-defined]


def test_canceling_on_a_stops_the_task_on_b(loop: Loop) -> None:
    """Given a long job of A running on B, when it is canceled on A, then B's job ends
    CANCELED and so does A's."""
    with loop.client(loop.ns_a) as client:
        handle = client.submit(analog_sequence(), 2000)
        wait_running(client, handle.job_id, timeout_s=120)
        client.control(CommandName.CANCEL, job_id=handle.job_id)
        result = handle.result(timeout=120)
    assert result.state is JobState.CANCELED
    assert _b_jobs(loop)[0].state is JobState.CANCELED  # type: ignore[attr-defined]


def test_a_new_owner_adopts_the_task_a_dead_one_left(loop: Loop) -> None:
    """Given a job of A running on B, when owner A is killed and another takes over, then the
    new owner follows the same task (B ran one job, not two) and the job ends DONE."""
    before = len(_b_jobs(loop))
    with loop.client(loop.ns_a) as client:
        handle = client.submit(analog_sequence(), 600)
        wait_running(client, handle.job_id, timeout_s=120)
        deadline = time.monotonic() + 60
        while len(_b_jobs(loop)) == before:  # the task exists on B
            assert time.monotonic() < deadline
            client.poll(0.1)
        loop.owners_a[-1].kill()
        loop.start_a()
        result = handle.result(timeout=180)
    assert result.state is JobState.DONE, result.error
    assert sum(result.counts.values()) == 600
    assert len(_b_jobs(loop)) == before + 1
    assert "adopted QRMI task" in loop.owners_a[-1].log()
