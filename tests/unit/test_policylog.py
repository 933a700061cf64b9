"""Which policy an activating owner runs (`consumers.owner.policylog`): the log's wins."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from consumers.owner.policylog import PolicyMismatch, policy_in_force
from schemas.policy import load_policy


def _file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_with_no_policy_in_the_log_the_owners_file_goes_into_force(tmp_path: Path) -> None:
    path = _file(tmp_path, "p.toml", "aging_step_s = 5.0\n")
    policy, text = policy_in_force(load_policy(path), path, None)
    assert policy.aging_step_s == 5.0 and text == "aging_step_s = 5.0\n"
    assert policy_in_force(load_policy(None), None, None)[1] is None  # the defaults


def test_a_different_file_leaves_the_logs_policy_in_force_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _file(tmp_path, "mine.toml", "aging_step_s = 5.0\n")
    logged = "max_waiting_per_user = 3\n"
    with caplog.at_level(logging.WARNING):
        policy, text = policy_in_force(load_policy(path), path, logged)
    assert text == logged and policy.max_waiting_per_user == 3 and policy.aging_step_s == 600
    assert (
        "differs from the policy in force in the log" in caplog.text and "mine.toml" in caplog.text
    )


def test_other_job_classes_in_the_log_refuse_the_activation(tmp_path: Path) -> None:
    path = _file(tmp_path, "mine.toml", "[classes.only]\nrank = 0\n")
    logged = "aging_step_s = 60.0\n"  # the default classes
    with pytest.raises(PolicyMismatch, match="not activating"):
        policy_in_force(load_policy(path), path, logged)
