"""Reservations against real owners: a window opening while another account's job waits for it,
members running in it, the reservation surviving a failover in the middle of the window, and
the waiting job running once it is deleted; `status` and `reservation show` list it."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from schemas import CommandName, JobState
from schemas.reservations import Reservation
from schemas.wire import utc_now
from tests.conftest import OwnerHarness
from tests.support.owners import register_allocation, run_qsched
from tests.support.sequences import analog_sequence
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e
POLICY = "shot_rate_hz = 400\njob_overhead_s = 0\n"


def qsched(owners: OwnerHarness, *args: str) -> subprocess.CompletedProcess[str]:
    """`qsched ARGS` on the test's broker and namespace."""
    return run_qsched(owners.broker.url, owners.broker.topology.namespace, *args)


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_a_window_opens_while_others_wait_members_run_and_it_survives_a_failover(
    owners: OwnerHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    args = ("--backend", "synthetic", "--shot-rate", "400", "--policy", str(policy))
    owner = owners.start(*args)
    client = owners.client()
    register_allocation(client, "9001", account="chem")
    register_allocation(client, "9002", account="phys")
    start = utc_now() + timedelta(seconds=4)
    window = Reservation(
        name="chem-window", start=start, end=start + timedelta(minutes=5), accounts=("chem",)
    )
    created = client.control(CommandName.RESERVATION_CREATE, reservation=window)
    assert created.ok, created.message

    monkeypatch.setenv("SLURM_JOB_ID", "9002")
    phys = client.submit(analog_sequence(2), 2000)  # 5 s: cannot end before the window opens

    def held_for(prefix: str) -> str | None:
        queue = client.control(CommandName.QUEUE, job_id=phys.job_id).queue or []
        held = queue[0].held if queue else None
        return held if held is not None and held.startswith(prefix) else None

    skipped = wait_until(
        lambda: held_for("skipped: reservation chem-window"),
        "phys's job skipped before the window",
        step=lambda: client.poll(0.1),
    )
    assert "of accounts chem starts in" in skipped
    wait_until(
        lambda: held_for("held: reservation chem-window"),
        "the window open, phys's job waiting in it",
        step=lambda: client.poll(0.1),
    )
    monkeypatch.setenv("SLURM_JOB_ID", "9001")
    chem = client.submit(analog_sequence(2), 200)
    assert chem.result(timeout=60).state is JobState.DONE

    owner.kill()  # failover in the middle of the window: the next owner folds it back
    owners.start(*args)
    assert held_for("held: reservation chem-window") is not None
    shown = qsched(owners, "reservation", "show", "chem-window", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["accounts"] == ["chem"]
    status = qsched(owners, "status")
    assert status.returncode == 0 and "reservation chem-window" in status.stdout

    deleted = qsched(owners, "reservation", "delete", "chem-window")
    assert deleted.returncode == 0, deleted.stderr
    assert phys.result(timeout=60).state is JobState.DONE


@pytest.mark.slow  # ~20 s: an owner, three jobs, a simulation
def test_simulate_of_a_recorded_history_with_a_reservation_added_makes_others_wait_for_it(
    owners: OwnerHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real owner's history (phys and chem jobs, no reservation), re-run by `qsched simulate`
    under a candidate policy with a reservation for chem over the whole history: phys's jobs
    wait for the window to close in the simulation; they did not in the recorded run."""
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    owners.start("--backend", "synthetic", "--shot-rate", "400", "--policy", str(policy))
    client = owners.client()
    register_allocation(client, "9001", account="chem")
    register_allocation(client, "9002", account="phys")
    handles = []
    for allocation in ("9002", "9001", "9002"):
        monkeypatch.setenv("SLURM_JOB_ID", allocation)
        handles.append(client.submit(analog_sequence(2), 200))  # 0.5 s each
    assert all(h.result(timeout=60).state is JobState.DONE for h in handles)
    now = utc_now()
    start, end = now - timedelta(minutes=10), now + timedelta(minutes=2)
    candidate = tmp_path / "candidate.toml"
    candidate.write_text(
        POLICY + f'[[reservations]]\nname = "chem-all"\nstart = {start.isoformat()}\n'
        f'end = {end.isoformat()}\naccounts = ["chem"]\n'
    )
    ran = qsched(owners, "simulate", "--policy", str(candidate), "--json")
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    recorded = report["recorded"]["wait_s"]["by_account"]
    simulated = report["simulated"]["wait_s"]["by_account"]
    assert recorded["phys"]["p95"] < 30 and simulated["chem"]["p95"] < 30
    assert simulated["phys"]["n"] == 2 and simulated["phys"]["p50"] >= 100  # the window's end
    assert report["simulated"]["jobs"]["ended"] == {"DONE": 3}
