"""A site's ordering plugin, experimented with safely: a real owner runs with it, `qsched
simulate` with the same policy (and the plugin installed) reproduces the recorded start order,
the stock policy does not, and `qsched policy check` finds the plugin or names the line that
asks for a missing one (tests/site_plugins, installed at test time by `tests.support.plugin_dist`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas import CommandName, JobState
from tests.conftest import OwnerHarness
from tests.integration.test_owner import events
from tests.support.owners import register_allocation, run_qsched
from tests.support.plugin_dist import install
from tests.support.sequences import analog_sequence

pytestmark = pytest.mark.e2e

SEQ = analog_sequence(2)
RAISES = 13  # qsched_testplugins.RAISE_SHOTS: the plugin raises, the job gets no site term
POLICY = '[plugins]\nordering = "site-flaky-term"\n[plugins.options.site-flaky-term]\nterms = { chem = 5 }\n'
# (name, account, priority, shots), submitted while paused. With chem's term 5: d, b (term 5 by
# priority), then a, x (the plugin raised: no term), c. Without the plugin: by priority alone.
BACKLOG = [
    ("a", "phys", 9, 10),
    ("b", "chem", 0, 10),
    ("c", "phys", 5, 11),
    ("x", "chem", 7, RAISES),
    ("d", "chem", 3, 12),
]
WITH_PLUGIN = ["d", "b", "a", "x", "c"]


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_simulate_reproduces_an_ordering_plugins_start_order_and_policy_check_finds_plugins(
    owners: OwnerHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = tmp_path / "site.toml"
    policy.write_text(POLICY)
    stock = tmp_path / "stock.toml"
    stock.write_text("# the stock policy: no plugins\n")
    plugin_env = install(tmp_path / "dist")
    owners.start("--policy", str(policy), "--backend", "synthetic", env=plugin_env)
    client = owners.client()
    assert client.control(CommandName.PAUSE).ok
    end = datetime.fromtimestamp(1900000000, UTC)
    allocations = {"phys": "7001", "chem": "7002"}  # the owner takes the account from Slurm's
    for account, allocation in allocations.items():
        register_allocation(client, allocation, account, end)
    handles = {}
    for name, account, priority, shots in BACKLOG:
        monkeypatch.setenv("SLURM_JOB_ID", allocations[account])
        monkeypatch.setenv("SLURM_JOB_ACCOUNT", account)
        monkeypatch.setenv("SLURM_JOB_END_TIME", "1900000000")
        handles[name] = client.submit(SEQ, shots, priority=priority)
    assert client.control(CommandName.RESUME).ok
    assert all(h.result(timeout=60).state is JobState.DONE for h in handles.values())
    names = {h.job_id: name for name, h in handles.items()}
    log = events(owners)
    assert [names[e.job_id] for e in log if e.topic == "job.started"] == WITH_PLUGIN
    url, namespace = owners.broker.url, owners.broker.topology.namespace

    same = run_qsched(url, namespace, "simulate", "--policy", str(policy), "--json", env=plugin_env)
    assert same.returncode == 0, same.stderr
    report = json.loads(same.stdout)
    assert report["start_order"] == {
        "same": True,
        "first_difference": None,
        "recorded_starts": len(BACKLOG),
        "simulated_starts": len(BACKLOG),
    }
    assert report["ordering_plugin"] == {"name": "site-flaky-term", "failures": 1}

    plain = run_qsched(url, namespace, "simulate", "--policy", str(stock))
    assert plain.returncode == 0, plain.stderr
    assert "start order: differs from position 1" in plain.stdout

    missing = run_qsched(url, namespace, "simulate", "--policy", str(policy))
    assert missing.returncode == 2, missing.stderr
    assert "no ordering plugin named 'site-flaky-term'" in missing.stderr

    found = run_qsched(url, namespace, "policy", "check", str(policy), env=plugin_env)
    assert found.returncode == 0, found.stdout + found.stderr
    assert f"{policy}: ok" in found.stderr
    unknown = run_qsched(url, namespace, "policy", "check", str(policy))
    assert unknown.returncode == 1, unknown.stdout + unknown.stderr
    assert unknown.stdout.startswith(
        f"{policy}:2: error: plugins: no ordering plugin named 'site-flaky-term'"
    )
