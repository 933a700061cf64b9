"""`qsched usage` against a real owner: the ledger charges the verified account, equals the
results' QPU seconds, survives a failover, and `qsched events usage` folds the same from the log."""

from __future__ import annotations

import csv
import io
import json
import subprocess

import pytest

from schemas import JobState
from tests.conftest import OwnerHarness
from tests.support.owners import register_allocation, run_qsched
from tests.support.sequences import analog_sequence

pytestmark = pytest.mark.e2e


def qsched(owners: OwnerHarness, *args: str) -> subprocess.CompletedProcess[str]:
    """`qsched ARGS` on the test's broker and namespace."""
    return run_qsched(owners.broker.url, owners.broker.topology.namespace, *args)


def _rows(owners: OwnerHarness, *args: str) -> list[dict[str, object]]:
    done = qsched(owners, "usage", "--json", *args)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout)["rows"])


def test_usage_charges_the_verified_account_the_results_qpu_seconds_across_a_failover(
    owners: OwnerHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = owners.start("--backend", "synthetic", "--shot-rate", "2000")
    monkeypatch.setenv("SLURM_JOB_ID", "8101")
    monkeypatch.setenv("SLURM_JOB_ACCOUNT", "claimed-acct")  # a client's word: not trusted
    client = owners.client()
    register_allocation(client, "8101", account="chem")  # as the prolog does
    handles = [client.submit(analog_sequence(2), 400) for _ in range(3)]
    results = [h.result(timeout=60) for h in handles]
    assert all(r.state is JobState.DONE for r in results)
    qpu_s = sum(r.timings.qpu_s or 0.0 for r in results)

    [row] = _rows(owners, "--by", "account", "--since", "1h")
    assert row["account"] == "chem"
    assert (row["jobs"], row["runs"], row["shots"]) == (3, 3, 1200)
    assert row["qpu_s"] == pytest.approx(qpu_s, abs=1e-6)
    assert row["emulator_s"] == 0 and row["started"] == 3

    table = qsched(owners, "usage", "--by", "user", "--csv")
    assert table.returncode == 0, table.stderr
    [line] = list(csv.DictReader(io.StringIO(table.stdout)))
    assert (line["account"], line["user"], line["jobs"], line["shots"]) == (
        "chem",
        client.user,
        "3",
        "1200",
    )

    owner.kill()  # the next owner rebuilds the ledger from the log (snapshot + tail)
    owners.start("--backend", "synthetic", "--shot-rate", "2000")
    assert _rows(owners, "--by", "account") == [row]
    assert _rows(owners, "--account", "nobody") == []

    folded = qsched(owners, "events", "usage", "--by", "account", "--json")
    assert folded.returncode == 0, folded.stderr
    [from_log] = json.loads(folded.stdout)["rows"]
    assert from_log["qpu_s"] == pytest.approx(qpu_s, abs=1e-6) and from_log["shots"] == 1200


def test_usage_refuses_bad_times_with_one_line_and_exit_2(owners: OwnerHarness) -> None:
    owners.start("--backend", "synthetic", "--shot-rate", "2000")
    bad = qsched(owners, "usage", "--since", "yesterday-ish")
    assert bad.returncode == 2
    assert "yesterday-ish" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    backwards = qsched(owners, "usage", "--since", "2026-12-02", "--until", "2026-12-01")
    assert backwards.returncode == 1 and "is not after" in backwards.stderr
