"""Settings sources and the policy file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from brokers.settings import OwnerSettings, Settings, load_settings
from brokers.topology import build_topology
from schemas import Mode, PolicyError, load_policy, parse_policy


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests see only the variables they set, never the user's shell."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("QSCHED_"):
            monkeypatch.delenv(name)


def test_env_nests_with_double_underscore_and_beats_the_toml_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "qsched.toml"
    config.write_text('namespace = "fromfile"\n[owner]\nshot_rate_hz = 5.0\nprefetch = 3\n')
    monkeypatch.setenv("QSCHED_OWNER__SHOT_RATE_HZ", "50")
    settings = load_settings(config)
    assert settings.namespace == "fromfile"
    assert settings.owner.shot_rate_hz == 50.0
    assert settings.owner.prefetch == 3


def test_the_shells_qsched_variables_never_reach_the_tests() -> None:
    """Given any QSCHED_* exported in the shell running pytest, a test sees only the defaults."""
    assert not [k for k in os.environ if k.startswith("QSCHED_")]
    settings = load_settings()
    assert settings.model_dump() == Settings().model_dump()
    assert settings.namespace == "qpu"
    assert settings.owner.prefetch == OwnerSettings.model_fields["prefetch"].default
    assert settings.policy_file is None and settings.owner.shot_rate_hz is None


def test_keyword_overrides_win_and_the_user_comes_from_the_url() -> None:
    settings = load_settings(amqp_url="amqp://alice:pw@127.0.0.1:5672/%2F", namespace="x")
    assert settings.amqp_user == "alice"
    assert settings.namespace == "x"


def test_default_policy_has_three_ranked_classes() -> None:
    policy = load_policy(None)
    assert policy.class_names == ("calibration", "production", "development")
    assert policy.classes["calibration"].preempts == ("production", "development")
    assert Mode.MAINTENANCE not in policy.classes["development"].modes


def test_topology_has_one_priority_queue_per_class_dead_lettering_to_the_dlx() -> None:
    topology = build_topology(load_settings(namespace="ns"), load_policy(None))
    queues = {q.name: q for q in topology.queues()}
    for name in ("calibration", "production", "development"):
        args = queues[f"ns.jobs.{name}"].arguments
        assert args["x-max-priority"] == 10
        assert args["x-dead-letter-exchange"] == "ns.dlx"
    assert queues["ns.events.log"].arguments["x-queue-type"] == "stream"
    assert queues["ns.events.log"].bindings == (("ns.events", "#"),)


def test_a_full_class_refuses_publishes_rather_than_dropping() -> None:
    settings = load_settings(namespace="ns", broker={"job_queue_max_length": 5})
    topology = build_topology(settings, load_policy(None))
    args = {q.name: q.arguments for q in topology.queues()}["ns.jobs.production"]
    assert args["x-max-length"] == 5
    assert args["x-overflow"] == "reject-publish"


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("operators = [\n'a',\n]]\n", 3, "Expected newline or end of document"),
        ("[classes.x]\nrank = -1\n", 2, "classes.x.rank"),
        ("[classes.x]\nrank = 0\npreempts = ['nope']\n", None, "preempts unknown classes"),
        ("mood = 'happy'\n", 1, "mood"),
    ],
)
def test_a_bad_policy_names_line_and_reason(text: str, line: int | None, reason: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    assert reason, "an empty reason would match any message"
    assert info.value.line == line
    assert reason in str(info.value)


def test_a_missing_policy_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "absent.toml")
