"""The reliability report says where each figure came from and never passes a red run as green.

The hooks and `record` are exercised in a real pytest subprocess (a scratch project whose
conftest registers them as tests/conftest.py does); the report is built from what it wrote.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.reliability import COLLECTED, OUTCOMES, RECORDS, _read, main, report

ROOT = Path(__file__).resolve().parents[2]

SCENARIOS = """
import pytest
from tests.support.invariants import check
from tests.support.reliability import record

pytestmark = pytest.mark.reliability


def test_records_then_passes():
    record("a scenario", verdict=check([], ["j"], None), note="measured 1")


def test_fails_before_recording():
    raise AssertionError("broke before record()")


def test_never_runs():
    pass
"""


def _run(tmp_path: Path) -> tuple[Path, int]:
    project = tmp_path / "project"
    project.mkdir()
    (project / "conftest.py").write_text(
        "from tests.support.reliability import pytest_collection_finish, pytest_runtest_logreport\n"
    )
    (project / "pytest.ini").write_text("[pytest]\nmarkers =\n    reliability: x\n")
    (project / "test_scenarios.py").write_text(textwrap.dedent(SCENARIOS))
    out = tmp_path / "out"
    env = os.environ | {"RELIABILITY_OUT": str(out), "PYTHONPATH": str(ROOT)}
    env.pop("PYTEST_XDIST_WORKER", None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-p", "no:cacheprovider", "-p", "no:randomly"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return out, done.returncode


def test_a_red_run_lists_every_collected_test_with_its_outcome_and_says_failed(
    tmp_path: Path,
) -> None:
    out, status = _run(tmp_path)
    assert status == 1
    collected = [r["node"] for r in _read(out, COLLECTED)]
    assert len(collected) == 3
    (row,) = _read(out, RECORDS)
    assert row["node"] == "test_scenarios.py::test_records_then_passes"
    assert row["commit"] and row["at"].endswith("+00:00") and row["invariants"] == 2
    text, green = report(collected, _read(out, RECORDS), _read(out, OUTCOMES), "pytest -x")
    assert not green
    assert text.splitlines()[4].startswith("**FAILED**: 2 of 3 reliability tests did not pass")
    lines = {line.split("`")[1]: line for line in text.splitlines() if "| `test_" in line}
    assert "| passed |" in lines["test_scenarios.py::test_records_then_passes"]
    assert "| 2 broken |" in lines["test_scenarios.py::test_records_then_passes"]
    assert "| failed | — | — |" in lines["test_scenarios.py::test_fails_before_recording"]
    assert "| not run |" in lines["test_scenarios.py::test_never_runs"]
    assert main([str(out)]) == 1


def _row(node: str, commit: str, at: str) -> dict[str, object]:
    return {"scenario": node, "node": node, "commit": commit, "at": at, "jobs": 1, "lost": 0}


def test_rows_of_several_commits_get_no_single_commit_header() -> None:
    records = [
        _row("t::a", "aaa1111", "2026-01-01T00:00:00+00:00")
        | {"duplicated": 0, "owner_crashes": 0},
        _row("t::b", "bbb2222", "2026-01-02T00:00:00+00:00")
        | {"duplicated": 0, "owner_crashes": 0},
    ]
    outcomes = [
        {
            "node": n,
            "when": "call",
            "outcome": "passed",
            "commit": c,
            "at": "2026-01-02T00:00:00+00:00",
        }
        for n, c in (("t::a", "aaa1111"), ("t::b", "bbb2222"))
    ]
    text, green = report(["t::a", "t::b"], records, outcomes, "x")
    assert green
    assert "Commit: `" not in text
    assert "Rows span 2 commits (aaa1111, bbb2222)" in text
    assert "| `aaa1111` |" in text and "| `bbb2222` |" in text
    one, _ = report(["t::a"], records[:1], outcomes[:1], "x")
    assert "Commit: `aaa1111`." in one
