"""Budgets against a real owner: an operator sets one, runs spend it, `submit` warns past 80%,
a job that does not fit is held naming the account, the budget and what is left, a top-up lets
it run; an unknown account is refused, named (bad durations: tests/unit/test_timespec.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from schemas import CommandName, JobState
from tests.conftest import OwnerHarness
from tests.support.owners import run_qsched
from tests.support.sequences import analog_sequence
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e
POLICY = 'shot_rate_hz = 500\njob_overhead_s = 0\n[accounts]\ndefault = { "*" = "phys" }\n'


def qsched(owners: OwnerHarness, *args: str) -> subprocess.CompletedProcess[str]:
    """`qsched ARGS` on the test's broker and namespace."""
    return run_qsched(owners.broker.url, owners.broker.topology.namespace, *args)


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_a_budget_warns_past_80_percent_holds_at_100_and_a_top_up_lets_the_job_run(
    owners: OwnerHarness, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    owners.start("--backend", "synthetic", "--shot-rate", "500", "--policy", str(policy))
    sequence = tmp_path / "seq.json"
    sequence.write_text(analog_sequence(2))
    unknown = qsched(owners, "budget", "set", "nosuch", "3600")
    assert unknown.returncode == 1 and "unknown account 'nosuch'" in unknown.stderr
    set_ = qsched(owners, "budget", "set", "phys", "4s", "--period", "day")
    assert set_.returncode == 0, set_.stderr
    assert "budget phys: 4 s left of 4 s this day" in set_.stdout

    first = qsched(owners, "submit", str(sequence), "--shots", "1700", "--wait", "--json")
    assert first.returncode == 0, first.stderr
    assert "qsched: budget phys: 4 s left of 4 s this day" in first.stderr  # told at submit

    shown = qsched(owners, "budget", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    [status] = [json.loads(line) for line in shown.stdout.splitlines()]
    assert status["account"] == "phys" and status["warn"] is True
    assert 0.8 <= status["used"] < 1.0, status

    second = qsched(owners, "submit", str(sequence), "--shots", "500")
    assert second.returncode == 0, second.stderr
    assert "qsched: warning: budget phys:" in second.stderr  # past 80%: a warning
    job_id = second.stdout.strip()
    client = owners.client()
    held = wait_until(
        lambda: (
            (q := client.control(CommandName.QUEUE, job_id=job_id).queue) and q[0].held and q[0]
        ),
        "the job held for its budget",
        step=lambda: client.poll(0.1),
    )
    assert held.held is not None
    assert "account phys has" in held.held and "4 s daily budget" in held.held
    assert "the job needs about 1 s" in held.held

    topped = qsched(owners, "budget", "top-up", "phys", "10")
    assert topped.returncode == 0, topped.stderr
    result = client.control(CommandName.RESULT, job_id=job_id, wait=True)
    assert result.ok
    done = wait_until(
        lambda: (r := client.control(CommandName.RESULT, job_id=job_id).result) and r,
        "the job ended after the top-up",
        step=lambda: client.poll(0.1),
    )
    assert done.state is JobState.DONE
