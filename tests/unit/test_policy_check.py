"""`qsched policy check`: every problem of a policy file with its line, and the exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from consumers.tools.policycheck.checks import ERROR, WARNING, check_text
from consumers.tools.policycheck.cli import policy

EXAMPLE = Path(__file__).resolve().parents[2] / "infra" / "policy.example.toml"


def test_the_example_policy_has_no_problem() -> None:
    found, problems = check_text(EXAMPLE.read_text())
    assert found is not None and problems == []


def test_every_schema_error_is_reported_with_its_line_not_only_the_first() -> None:
    text = (
        "mode = 'production'\n"  # 1
        "[classes.production]\n"  # 2
        "rank = 'first'\n"  # 3
        "[classes.development]\n"  # 4
        "rank = 2\n"  # 5
        "colour = 'blue'\n"  # 6
    )
    found, problems = check_text(text)
    assert found is None
    assert [(p.severity, p.line) for p in problems] == [(ERROR, 3), (ERROR, 6)]
    assert "classes.production.rank" in problems[0].message
    assert "classes.development.colour" in problems[1].message


def test_toml_syntax_and_unknown_preempted_class_name_their_line() -> None:
    _, syntax = check_text("mode = 'production\n")
    assert [(p.severity, p.line) for p in syntax] == [(ERROR, 1)]
    _, unknown = check_text("[classes.a]\nrank = 0\npreempts = ['b']\n")
    assert [(p.severity, p.line) for p in unknown] == [(ERROR, 3)]
    assert "unknown classes ['b']" in unknown[0].message


@pytest.mark.parametrize(
    ("text", "severity", "line", "words"),
    [
        ("[classes.a]\nrank = 0\nmodes = []\n", ERROR, 3, "runs in no mode"),
        (
            "calibration_valid_s = 60\n[classes.a]\nrank = 0\nmax_shots = 1000\n",
            ERROR,
            4,
            "held for ever",
        ),
        ("[classes.a]\nrank = 0\nmax_runtime_s = 0.1\n", WARNING, 3, "time out"),
        (
            "[classes.a]\nrank = 0\npreempts = ['b']\n[classes.b]\nrank = 1\npreempts = ['a']\n",
            WARNING,
            3,
            "preempt each other",
        ),
        ("operators = []\n[classes.a]\nrank = 0\n", WARNING, 1, "nobody may"),
        (
            "mode = 'maintenance'\n[classes.a]\nrank = 0\nmodes = ['production']\n",
            WARNING,
            1,
            "no class runs in the default mode",
        ),
    ],
)
def test_what_the_schema_cannot_see_is_found_on_its_line(
    text: str, severity: str, line: int, words: str
) -> None:
    found, problems = check_text(text)
    assert found is not None
    matching = [p for p in problems if words in p.message]
    assert [(p.severity, p.line) for p in matching][:1] == [(severity, line)]


def test_exit_codes_0_usable_1_problems_2_unreadable(tmp_path: Path) -> None:
    runner = CliRunner()
    good = runner.invoke(policy, ["check", str(EXAMPLE)])
    assert good.exit_code == 0, good.output
    warned = tmp_path / "warned.toml"
    warned.write_text("operators = []\n")
    assert runner.invoke(policy, ["check", str(warned)]).exit_code == 0
    strict = runner.invoke(policy, ["check", "--strict", str(warned)])
    assert strict.exit_code == 1
    assert f"{warned}:1: warning: no operators" in strict.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[classes.a]\nrank = -1\n")
    failed = runner.invoke(policy, ["check", "--json", str(bad)])
    assert failed.exit_code == 1
    assert '"line": 2' in failed.output and '"ok": false' in failed.output
    assert runner.invoke(policy, ["check", str(tmp_path / "missing.toml")]).exit_code == 2


def test_each_missing_or_broken_plugin_is_reported_on_the_line_that_names_it() -> None:
    text = (
        "[plugins]\n"  # 1
        'admission = ["accounts", "quota"]\n'  # 2
        'ordering = "grant-share"\n'  # 3
        'event_sinks = ["jsonl"]\n'  # 4
        "[plugins.options.accounts]\n"  # 5
        "colour = 1\n"  # 6
        "[plugins.options.jsonl]\n"  # 7
        'path = "/tmp/qsched-test-never-written.jsonl"\n'  # 8
    )
    _, problems = check_text(text)
    assert [(p.severity, p.line) for p in problems] == [(ERROR, 2), (ERROR, 2), (ERROR, 3)]
    assert "admission plugin 'accounts'" in problems[0].message  # its factory refused `colour`
    assert "no admission plugin named 'quota'" in problems[1].message
    assert "no ordering plugin named 'grant-share'" in problems[2].message


def test_errors_between_classes_are_reported_with_the_errors_of_fields() -> None:
    """Given a file with a bad field and classes preempting classes that do not exist, when it
    is checked, then all are reported at once, each on its line (before: only the field error,
    the unknown classes only once it was fixed)."""
    text = (
        "shot_rate_hz = 0\n"  # 1
        "[classes.production]\n"  # 2
        "rank = -1\n"  # 3
        "preempts = ['nope']\n"  # 4
        "[classes.development]\n"  # 5
        "rank = 2\n"  # 6
        "preempts = ['gone', 'production']\n"  # 7
    )
    found, problems = check_text(text)
    assert found is None
    assert [p.line for p in problems] == [1, 3, 4, 7], problems
    assert all(p.severity == ERROR for p in problems)
    assert "preempts unknown classes ['nope']" in problems[2].message
    assert "preempts unknown classes ['gone']" in problems[3].message
    _, empty = check_text("colour = 'blue'\n[classes]\n")
    assert [(p.line, p.message) for p in empty] == [
        (1, "colour: Extra inputs are not permitted"),
        (2, "at least one job class is needed"),
    ]
