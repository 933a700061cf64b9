"""qsched under a real single-node Slurm + MUNGE (infra/slurm/local-slurm.sh), as a unix user the
test creates: MPI ranks of a 2-task batch job submit through qsched; scancel cancels an
allocation's jobs through the Epilog; a job that cannot finish before its allocation's end is not
started. The owner is a real `qsched owner` on the shared broker (own namespace); the Epilog is
infra/slurm/epilog.sh run by slurmd as root.

MPI: MPICH's `mpiexec -launcher fork` from the venv inside the batch script (`srun --mpi=pmix`
needs Debian's Open MPI/PMIx stack, which the project does not install).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

from brokers.users import Rabbitmqctl, UserSetupFailed, add_user
from schemas.enums import ErrorCode, JobState
from schemas.envelope import Event
from tests.conftest import OwnerHarness
from tests.support.logread import whole_log
from tests.support.munged import munge_installed
from tests.support.owners import wait_running
from tests.support.unixusers import (
    USER_PYTHON,
    can_create_users,
    create_user,
    delete_user,
    run_as,
    user_env,
)

pytestmark = [pytest.mark.slurm, pytest.mark.e2e, pytest.mark.timeout(600)]
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "infra" / "slurm" / "local-slurm.sh"
RANK = ROOT / "tests" / "e2e" / "slurm_rank.py"
MPIEXEC = Path(sys.prefix) / "bin" / "mpiexec"


@dataclass
class Slurm:
    """A running single-node Slurm and the unix user who submits to it."""

    base: Path
    user: str
    url: str = ""  # the broker as the user: its own broker account (set by `site`)

    @property
    def conf(self) -> str:
        return str(self.base / "slurm.conf")

    def sbatch(self, owners: OwnerHarness, body: str, *options: str) -> tuple[str, Path]:
        """Submit a batch script as the test user; returns (Slurm job id, its output dir)."""
        home = Path(os.path.expanduser(f"~{self.user}"))
        out = home / f"out-{time.monotonic_ns()}"
        out.mkdir()
        os.chown(out, *_ids(self.user))
        script = out / "job.sh"
        script.write_text(f"#!/bin/sh\ncd {out}\n{body.format(out=out)}\n")
        script.chmod(0o755)
        env = user_env(
            self.user,
            {
                "SLURM_CONF": self.conf,
                "QSCHED_AMQP_URL": self.url or owners.broker.url,
                "QSCHED_NAMESPACE": owners.broker.topology.namespace,
            },
        )
        done = run_as(
            self.user,
            ["sbatch", "--parsable", "-o", f"{out}/slurm.out", *options, str(script)],
            env,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().split(";")[0], out

    def squeue_state(self, job_id: str) -> str:
        done = subprocess.run(
            ["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"],  # ended ones too (MinJobAge)
            env=dict(os.environ, SLURM_CONF=self.conf),
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout.strip()

    def epilog_log(self) -> str:
        path = self.base / "log" / "epilog.log"
        return path.read_text() if path.exists() else ""

    def prolog_log(self) -> str:
        path = self.base / "log" / "prolog.log"
        return path.read_text() if path.exists() else ""

    def explain(self, job_id: str, out: Path) -> str:
        """What Slurm and the job said, for a failure message."""

        def tail(path: Path, lines: int = 30) -> str:
            return (
                "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
                if path.exists()
                else "(none)"
            )

        listed = [p.name for p in sorted(out.iterdir())] if out.exists() else []
        return (
            f"\nsqueue state of {job_id}: {self.squeue_state(job_id)!r}; files in {out}: {listed}"
            f"\n--- slurm.out\n{tail(out / 'slurm.out')}"
            f"\n--- prolog.log\n{tail(self.base / 'log' / 'prolog.log', 5)}"
            f"\n--- slurmd.log\n{tail(self.base / 'log' / 'slurmd.log')}"
            f"\n--- slurmctld.log\n{tail(self.base / 'log' / 'slurmctld.log', 15)}"
        )


def _ids(user: str) -> tuple[int, int]:
    import pwd

    record = pwd.getpwnam(user)
    return record.pw_uid, record.pw_gid


@pytest.fixture(scope="module")
def slurm() -> Iterator[Slurm]:
    # Checked here, not at import: a run that deselects the `slurm` tests must still collect.
    if not (can_create_users() and munge_installed()):
        pytest.fail("Slurm tests need root and Slurm + MUNGE: run `make slurm-deps`", pytrace=False)
    # Not under pytest's tmp (mode 0700): munged's socket and slurm.conf must be reachable by all.
    base = Path(tempfile.mkdtemp(prefix="qsched-slurm-"))
    qsched = Path(sys.executable).with_name("qsched")
    user = create_user("qslurm")
    try:
        subprocess.run(
            [
                str(SCRIPT),
                "start",
                str(base),
                "--epilog-env",
                str(base / "epilog.env"),
                "--qsched",
                str(qsched),
            ],
            check=True,
            timeout=120,
        )
        yield Slurm(base, user)
    finally:  # also when the start failed half-way: stop whatever daemons have pid files
        subprocess.run([str(SCRIPT), "stop", str(base)], timeout=60, check=False)
        delete_user(user)
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def broker_account(slurm: Slurm, owners: OwnerHarness, user: str) -> Iterator[Slurm]:
    """`slurm` as unix user `user` with a submitter account of its own name on the broker, as a
    site gives its users (broker user = unix user): the owner matches the prolog's registration
    (the unix user) with the job's broker-verified user."""
    found = shutil.which("rabbitmqctl")
    assert found, "the Slurm tests add broker users with rabbitmqctl"
    ctl = Rabbitmqctl(Path(found))
    password = add_user(ctl, user, "submitter", owners.broker.topology.namespace)
    parts = urlsplit(owners.broker.url)
    netloc = f"{quote(user)}:{quote(password, safe='')}@{parts.hostname}:{parts.port or 5672}"
    try:
        yield replace(slurm, user=user, url=urlunsplit(parts._replace(netloc=netloc)))
    finally:
        with contextlib.suppress(UserSetupFailed):
            ctl.run("delete_user", "--", user)


@pytest.fixture
def site(slurm: Slurm, owners: OwnerHarness) -> Iterator[Slurm]:
    """Point the Prolog and Epilog at this test's namespace (they read the file each time they
    run); the test's unix user submits with its own broker account."""
    namespace = owners.broker.topology.namespace
    (slurm.base / "epilog.env").write_text(
        f"QSCHED_AMQP_URL={owners.broker.url}\nQSCHED_NAMESPACE={namespace}\n"
    )
    with broker_account(slurm, owners, slurm.user) as mine:
        yield mine


def events(owners: OwnerHarness) -> list[Event]:
    return whole_log(owners.broker.channel(), owners.broker.topology.events_stream)


def wait_for(what: str, check, timeout_s: float = 120.0, step_s: float = 0.2, explain=None):  # type: ignore[no-untyped-def]
    """Poll `check` until it returns something truthy; fail naming `what` (and `explain()`)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            detail = explain() if explain else ""
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}{detail}")
        time.sleep(step_s)


def final_results(owners: OwnerHarness, job_ids: list[str]) -> dict[str, Event]:
    done = {
        e.job_id: e
        for e in events(owners)
        if e.job_id in job_ids and e.result is not None and e.result.state.is_final
    }
    return done if len(done) == len(job_ids) else {}


def test_two_mpi_ranks_submit_through_qsched_with_their_slurm_context(
    site: Slurm, owners: OwnerHarness
) -> None:
    owners.start("--backend", "synthetic")
    body = f"{MPIEXEC} -launcher fork -n 2 {USER_PYTHON} {RANK} results {{out}}"
    job_id, out = site.sbatch(owners, body, "-n", "2", "--account=qphys", "--time=00:10:00")
    files = wait_for(
        "both ranks' results",
        lambda: (
            sorted(out.glob("rank-*.json")) if len(list(out.glob("rank-*.json"))) == 2 else None
        ),
        timeout_s=180,
        explain=lambda: site.explain(job_id, out),
    )
    ranks = [json.loads(f.read_text()) for f in files]
    assert [r["rank"] for r in ranks] == [0, 1], (out / "slurm.out").read_text()
    for rank in ranks:
        states = [r["state"] for r in rank["results"]]
        assert states == ["DONE"], f"{rank}; prolog: {site.prolog_log()}"
        assert rank["results"][0]["shots"] == 20
        context = rank["context"]
        assert (context["job_id"], context["rank"], context["account"]) == (
            job_id,
            rank["rank"],
            "qphys",
        )
        end = int(datetime.fromisoformat(context["allocation_end"]).timestamp())
        assert rank["prolog_end"] == str(end)  # the TaskProlog's true end, from squeue
    accepted = [e.data["job"]["slurm"] for e in events(owners) if e.topic == "job.accepted"]
    assert sorted(a["rank"] for a in accepted) == [0, 1]  # the jobs as the owner holds them
    for slurm in accepted:
        assert slurm["job_id"] == job_id and slurm["account"] == "qphys"
        owner_end = datetime.fromisoformat(slurm["allocation_end"])
        assert owner_end == datetime.fromisoformat(ranks[0]["context"]["allocation_end"])
    wait_for("the epilog after the job", lambda: f"allocation {job_id} ended" in site.epilog_log())
    assert f"allocation {job_id} of {site.user} registered" in site.prolog_log()
    registered = [e for e in events(owners) if e.topic == "control.allocation-started"]
    assert [
        (e.data["allocation"], e.data["registered"]["user"], e.data["registered"]["account"])
        for e in registered
    ] == [(job_id, site.user, "qphys")], [e.data for e in registered]


def test_scancel_cancels_waiting_jobs_and_stops_the_running_one(
    site: Slurm, owners: OwnerHarness
) -> None:
    owners.start("--backend", "synthetic", env={"QSCHED_OWNER__SHOT_RATE_HZ": "20"})
    client = owners.client()
    body = f"{USER_PYTHON} {RANK} nowait {{out}} 3 2000"  # 100 s each at 20 shots/s
    job_id, out = site.sbatch(owners, body, "-n", "1", "--time=00:10:00")
    ids = wait_for(
        "the job ids",
        lambda: (out / "ids.json").exists() and json.loads((out / "ids.json").read_text()),
        explain=lambda: site.explain(job_id, out),
    )
    job_ids = ids["job_ids"]
    wait_running(client, job_ids[0], timeout_s=60)
    subprocess.run(["scancel", job_id], env=dict(os.environ, SLURM_CONF=site.conf), check=True)
    scanceled = time.time()
    results = wait_for(
        "every job's final result", lambda: final_results(owners, job_ids), timeout_s=60
    )
    assert {r.result.state for r in results.values()} == {JobState.CANCELED}  # type: ignore[union-attr]
    assert {r.result.error.code for r in results.values()} == {ErrorCode.ALLOCATION_ENDED}  # type: ignore[union-attr]
    running = results[job_ids[0]].result
    assert running is not None and running.timings.started_at is not None  # it was running
    ended = next(e for e in events(owners) if e.topic == "control.allocation-ended")
    assert ended.data["allocation"] == job_id
    stop_s = running.timings.ended_at.timestamp() - ended.at.timestamp()
    print(
        f"scancel -> running job ended: {running.timings.ended_at.timestamp() - scanceled:.2f} s; "
        f"allocation-ended received -> ended: {stop_s:.2f} s"
    )
    assert stop_s <= 2.0, f"the running job took {stop_s:.2f} s to stop after allocation-ended"
    wait_for("the epilog's log line", lambda: f"allocation {job_id} ended" in site.epilog_log())


def test_a_job_too_long_for_its_allocation_is_not_started(
    site: Slurm, owners: OwnerHarness
) -> None:
    owners.start("--backend", "synthetic")
    client = owners.client()
    body = f"{USER_PYTHON} {RANK} nowait {{out}} 1 2000"  # ~400 s by the policy's 5 shots/s
    job_id, out = site.sbatch(owners, body, "-n", "1", "--time=00:01:00")
    ids = wait_for(
        "the job id",
        lambda: (out / "ids.json").exists() and json.loads((out / "ids.json").read_text()),
        explain=lambda: site.explain(job_id, out),
    )
    qpu_job = ids["job_ids"][0]
    held = wait_for(
        "a hold reason naming the allocation's end",
        lambda: _held_reason(client, qpu_job),
        timeout_s=60,
    )
    assert f"allocation {job_id} ends in" in held
    result = wait_for(
        "the job's end with the allocation", lambda: final_results(owners, [qpu_job]), timeout_s=150
    )
    final = result[qpu_job].result
    assert final is not None and final.state is JobState.CANCELED
    assert final.error is not None and final.error.code is ErrorCode.ALLOCATION_ENDED
    assert not [e for e in events(owners) if e.topic == "job.started" and e.job_id == qpu_job]
    # The allocation itself ran out of time: Slurm says TIMEOUT (not COMPLETED, not gone).
    assert wait_for("TIMEOUT in Slurm", lambda: site.squeue_state(job_id) == "TIMEOUT")


def _held_reason(client, job_id: str) -> str | None:  # type: ignore[no-untyped-def]
    from schemas.enums import CommandName

    status = client.control(CommandName.STATUS, timeout=10).status
    reasons = status.held_reasons if status else {}
    return reasons.get(job_id)


def test_a_job_claiming_another_users_allocation_is_refused(
    site: Slurm, owners: OwnerHarness
) -> None:
    """Two unix users: mallory, inside her own allocation, claims alice's (SLURM_JOB_ID set by
    hand); the owner refuses it naming the allocation, from the prolog's registration, while
    alice's job runs. (Two allocations fill the node's 2 CPUs.)"""
    owners.start("--backend", "synthetic")
    body = f"{USER_PYTHON} {RANK} nowait {{out}} 1 10"
    alice_job, alice_out = site.sbatch(owners, body, "-n", "1", "--time=00:10:00")
    mallory = create_user("qmal")
    try:
        with broker_account(site, owners, mallory) as other:
            claim = f"SLURM_JOB_ID={alice_job} {USER_PYTHON} {RANK} nowait {{out}} 1 10"
            mallory_job, claim_out = other.sbatch(owners, claim, "-n", "1", "--time=00:10:00")
            ids = {}
            for name, job, out in (
                ("alice", alice_job, alice_out),
                ("claim", mallory_job, claim_out),
            ):
                ids[name] = wait_for(
                    f"{name}'s job ids",
                    lambda out=out: (
                        (out / "ids.json").exists()
                        and json.loads((out / "ids.json").read_text())["job_ids"][0]
                    ),
                    explain=lambda job=job, out=out: site.explain(job, out),
                )
            results = wait_for(
                "every job's final result",
                lambda: final_results(owners, list(ids.values())),
                timeout_s=90,
            )
            claimed = results[ids["claim"]].result
            assert claimed is not None and claimed.state is JobState.REJECTED
            assert claimed.error is not None
            assert claimed.error.code is ErrorCode.NOT_YOUR_ALLOCATION, claimed.error
            assert alice_job in claimed.error.message
            alice = results[ids["alice"]].result
            assert alice is not None and alice.state is JobState.DONE
    finally:
        conf = dict(os.environ, SLURM_CONF=site.conf)  # the ranks sleep until scancel
        subprocess.run(["scancel", "-u", site.user], env=conf, check=False)
        subprocess.run(["scancel", "-u", mallory], env=conf, check=False)
        delete_user(mallory)
