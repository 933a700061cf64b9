"""Site plugins in a real owner: loaded by entry-point name from the policy file, each control
point with the reference plugin and with plugins that raise and hang (tests/site_plugins,
installed as a distribution at test time by `tests.support.plugin_dist`)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from producers.client import QPUClient
from schemas import CommandName, ErrorCode, JobState
from tests.conftest import OwnerHarness
from tests.integration.test_owner import events
from tests.support.owners import register_allocation
from tests.support.plugin_dist import install
from tests.support.sequences import analog_sequence
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

SEQ = analog_sequence(2)


def _policy(tmp_path: Path, text: str) -> str:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def _account(monkeypatch: pytest.MonkeyPatch, account: str, client: QPUClient) -> None:
    """The client submits from an allocation of `account`, which the prolog registered."""
    allocation = f"7001-{account}"
    register_allocation(client, allocation, account, datetime.fromtimestamp(1900000000, UTC))
    monkeypatch.setenv("SLURM_JOB_ID", allocation)
    monkeypatch.setenv("SLURM_JOB_ACCOUNT", account)
    monkeypatch.setenv("SLURM_JOB_END_TIME", "1900000000")


def _held(client: object, job_id: str) -> str:
    """The owner's hold reason for `job_id`, waiting for it to be there."""
    found = wait_until(
        lambda: client.control(CommandName.STATUS).status.held_reasons.get(job_id),  # type: ignore[attr-defined]
        f"a hold reason for {job_id}",
        30.0,
    )
    return str(found)


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_admission_plugins_refuse_hold_release_and_survive_raising_and_hanging_plugins(
    owners: OwnerHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = tmp_path / "release"
    policy = _policy(
        tmp_path,
        f"""
[plugins]
admission = ["accounts", "site-flaky"]
timeout_s = 0.5
recheck_s = 0.5
[plugins.options.accounts]
blocked = ["spam"]
over_budget = ["chem"]
[plugins.options.site-flaky]
release_file = "{release}"
hang_s = 3
[plugins.options.site-flaky-backend]
hang_s = 3
""",
    )
    env = install(tmp_path / "dist")
    owners.start("--policy", policy, "--backend", "site-flaky-backend", env=env)
    client = owners.client()

    _account(monkeypatch, "spam", client)
    refused = client.submit(SEQ, 10).result(timeout=30)
    assert refused.state is JobState.REJECTED and refused.error.code is ErrorCode.ADMISSION_REFUSED
    assert refused.error.message == (
        "refused by admission plugin accounts: account spam may not use the QPU"
    )

    _account(monkeypatch, "chem", client)
    over_budget = client.submit(SEQ, 10)
    _account(monkeypatch, "phys", client)
    raising = client.submit(SEQ, 13)
    waiting = client.submit(SEQ, 19)
    plain = client.submit(SEQ, 10)
    result = plain.result(timeout=60)
    assert result.state is JobState.DONE and result.counts == {"00": 10}
    assert _held(client, over_budget.job_id) == (
        "held: admission plugin accounts: account chem is over its QPU budget"
    )
    assert "failed (RuntimeError('site plugin raised for 13 shots'))" in _held(
        client, raising.job_id
    )
    assert _held(client, waiting.job_id).endswith("waiting for release")

    hanging = client.submit(SEQ, 17)
    # the first ask overran its limit; a re-ask while that call still hangs fails at once
    assert re.search(
        r"failed \((no answer within|still inside a call that overran its) 0\.5 s",
        _held(client, hanging.job_id),
    )
    release.touch()  # the held job is asked again (recheck_s) once the hung call is over
    assert waiting.result(timeout=60).state is JobState.DONE

    backend_raises = client.submit(SEQ, 23).result(timeout=60)
    assert backend_raises.state is JobState.ERROR
    assert backend_raises.error.message.startswith(
        "backend plugin site-flaky-backend could not start the run: RuntimeError"
    )
    backend_hangs = client.submit(SEQ, 29).result(timeout=60)
    assert backend_hangs.state is JobState.ERROR
    assert "could not start the run: no answer within 0.5 s" in backend_hangs.error.message

    status = client.control(CommandName.STATUS).status  # the owner is still serving
    assert {raising.job_id, hanging.job_id, over_budget.job_id} <= set(status.held_reasons)
    failed = [e for e in events(owners) if e.topic == "plugin.failed"]
    assert {(e.job_id, e.data["plugin"]) for e in failed} >= {
        (raising.job_id, "site-flaky"),
        (hanging.job_id, "site-flaky"),
    }
    # Asked again every recheck, it fails the same way each time: logged once, on change (a
    # pairwise "each differs from the last" check passed vacuously on this one-element list).
    again = [e.data["error"] for e in failed if e.job_id == raising.job_id]
    assert len(again) == 1 and "site plugin raised for 13 shots" in again[0], again


def test_an_ordering_plugin_orders_starts_and_every_event_reaches_the_sinks(
    owners: OwnerHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference_out = tmp_path / "reference.jsonl"
    flaky_out = tmp_path / "flaky.jsonl"
    policy = _policy(
        tmp_path,
        f"""
[plugins]
ordering = "site-flaky-term"
event_sinks = ["jsonl", "site-flaky-sink", "site-broken-sink", "site-hung-sink"]
timeout_s = 0.5
[plugins.options.site-flaky-term]
terms = {{ chem = 5 }}
hang_s = 1
[plugins.options.jsonl]
path = "{reference_out}"
[plugins.options.site-flaky-sink]
path = "{flaky_out}"
failures = 2
""",
    )
    owner = owners.start(
        "--policy", policy, "--backend", "synthetic", env=install(tmp_path / "dist")
    )
    client = owners.client()
    assert client.control(CommandName.PAUSE).ok
    _account(monkeypatch, "phys", client)
    urgent = client.submit(SEQ, 10, priority=9)
    _account(monkeypatch, "chem", client)
    granted = client.submit(SEQ, 10, priority=0)
    _account(monkeypatch, "phys", client)
    raising = client.submit(SEQ, 13)
    hanging = client.submit(SEQ, 17)
    assert client.control(CommandName.RESUME).ok
    for handle in (urgent, granted, raising, hanging):
        assert handle.result(timeout=60).state is JobState.DONE

    log = events(owners)
    started = [e.job_id for e in log if e.topic == "job.started"]
    assert started == [granted.job_id, urgent.job_id, raising.job_id, hanging.job_id]
    ordering_failures = {
        e.job_id: e.reason
        for e in log
        if e.topic == "plugin.failed" and e.data["point"] == "ordering"
    }
    assert "RuntimeError" in ordering_failures[raising.job_id]
    assert "no answer within 0.5 s" in ordering_failures[hanging.job_id]

    def sink_failures() -> set[str]:
        return {
            e.data["plugin"]
            for e in events(owners)
            if e.topic == "plugin.failed" and e.data["point"] == "event_sinks"
        }

    wait_until(
        lambda: sink_failures() >= {"site-broken-sink", "site-hung-sink"},
        "plugin.failed events for the broken and the hung sink",
        60.0,
        step=lambda: client.poll(0.5),
    )
    assert owner.stop() == 0  # SIGTERM: the sinks get what is buffered, then the owner exits
    written = [e.event_id for e in events(owners) if e.topic != "owner.activating"]
    for out in (reference_out, flaky_out):
        seen = [json.loads(line)["event_id"] for line in out.read_text().splitlines()]
        assert seen == written, out.name
