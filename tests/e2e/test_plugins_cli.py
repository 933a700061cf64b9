"""`qsched plugins` and `qsched owner` with plugins, as an operator runs them (no broker needed:
both fail or answer before connecting)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_cli import one_line, qsched
from tests.support.plugin_dist import install

pytestmark = pytest.mark.e2e

UNREACHABLE = "amqp://guest:guest@127.0.0.1:1/%2F"  # nothing is asked of it


def test_plugins_lists_every_control_point_with_its_distribution_and_what_the_policy_loads(
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[plugins]\nadmission = ["accounts", "site-flaky"]\nevent_sinks = ["site-broken-sink"]\n'
        '[plugins.options.site-flaky]\nrelease_file = "/nonexistent"\n'
    )
    env = install(tmp_path / "dist") | {"QSCHED_OWNER__BACKEND": "site-flaky-backend"}
    done = qsched(UNREACHABLE, "p", "plugins", "--policy", str(policy), "--json", env=env)
    assert done.returncode == 0, done.stderr
    rows = {(r["point"], r["name"]): r for r in map(json.loads, done.stdout.splitlines())}
    assert rows[("admission", "site-flaky")] == {
        "point": "admission",
        "name": "site-flaky",
        "distribution": "qsched-testplugins",
        "version": "0.3.1",
        "module": "qsched_testplugins:FlakyAdmission",
        "loaded": True,
    }
    assert rows[("admission", "accounts")]["distribution"] == "qsched"
    assert rows[("admission", "accounts")]["loaded"] is True
    assert rows[("ordering", "account-term")]["loaded"] is False
    assert rows[("event_sinks", "site-broken-sink")]["loaded"] is True
    assert rows[("backends", "site-flaky-backend")]["loaded"] is True
    assert rows[("backends", "emulator")]["loaded"] is False
    assert rows[("backends", "emulator")]["version"] == "built in"


@pytest.mark.parametrize("command", ["plugins", "owner"])
def test_a_policy_naming_a_missing_plugin_is_refused_in_one_line_with_exit_2(
    tmp_path: Path, command: str
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[plugins]\nordering = "grant-share"\n')
    done = qsched(UNREACHABLE, "p", command, "--policy", str(policy), timeout=60)
    assert done.returncode == 2, done.stderr
    line = one_line(done)
    assert "no ordering plugin named 'grant-share' (qsched.ordering: account-term)" in line
