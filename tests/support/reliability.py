"""Figures of the reliability scenarios, with their provenance, for `make reliability`.

With ``RELIABILITY_OUT`` naming a folder (set by `make reliability`), three JSON-lines files
are written there; without it nothing is written:

- ``collected.jsonl``: every selected test marked ``reliability`` (its node id), once the
  session has collected, so a test that fails before it records anything, or never runs, still
  has a row;
- ``outcomes.jsonl``: the outcome of each phase (setup, call, teardown) of those tests, with
  the commit and UTC time (`pytest_runtest_logreport`, in the process that sees every report);
- ``records.jsonl``: what a scenario measured (`record`, called by the test itself), with its
  node id, the commit the run is on (``+dirty`` when the work tree differs from it), the UTC
  time, and the invariant checker's verdict when the figures come from it.

``python -m tests.support.reliability DIR [COMMAND]`` prints the report: one row per collected test
with its outcome, figures, commit and time. It names a single commit only when every row has
the same one, says FAILED at the top when any test did not pass (failed, errored, skipped or
not run), and exits 1 then; `make reliability` copies it over ``docs/reliability.md`` only after
a green run.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.invariants import Verdict

RECORDS = "records.jsonl"
COLLECTED = "collected.jsonl"
OUTCOMES = "outcomes.jsonl"
MARKER = "reliability"
ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def current_commit() -> str:
    """The short commit of the checkout the tests run from, ``+dirty`` if tracked files differ."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _append(name: str, row: dict[str, Any]) -> None:
    folder = os.environ.get("RELIABILITY_OUT")
    if not folder:
        return
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps(row) + "\n")


def _current_node() -> str:
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    return current.rsplit(" (", 1)[0] if current else "unknown"


def record(
    scenario: str,
    *,
    verdict: Verdict | None = None,
    jobs: int | None = None,
    lost: int | None = None,
    duplicated: int | None = None,
    owner_crashes: int = 0,
    worst_gap_s: float | None = None,
    note: str = "",
) -> None:
    """Append one run's figures (when ``RELIABILITY_OUT`` names a folder).

    Args:
        scenario: what the report calls the scenario.
        verdict: the invariant checker's verdict; jobs, lost and duplicated come from it unless
            given, and the row says whether the invariants held.
        jobs: jobs (or messages) the scenario sent.
        lost: of them, those that never ended.
        duplicated: those that ended more than once.
        owner_crashes: owner processes that exited without being killed by the test.
        worst_gap_s: the longest failover gap measured.
        note: what the scenario did and measured, built from measured values.
    """
    row = {
        "scenario": scenario,
        "node": _current_node(),
        "commit": current_commit(),
        "at": _now(),
        "jobs": jobs if jobs is not None else (verdict.jobs if verdict else 0),
        "lost": lost if lost is not None else (verdict.lost if verdict else 0),
        "duplicated": duplicated
        if duplicated is not None
        else (verdict.duplicated if verdict else 0),
        "owner_crashes": owner_crashes,
        "worst_gap_s": worst_gap_s,
        "invariants": None if verdict is None else len(verdict.problems),
        "note": note,
    }
    _append(RECORDS, row)


# ---- pytest hooks (registered by tests/conftest.py) -----------------------------------------


def pytest_collection_finish(session: pytest.Session) -> None:
    """Write down every selected reliability test (workers of xdist each write theirs)."""
    for item in session.items:
        if item.get_closest_marker(MARKER):
            _append(COLLECTED, {"node": item.nodeid})


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Write each phase's outcome of a reliability test (only where every report arrives: the
    xdist controller, or the single process)."""
    if MARKER not in report.keywords or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    row = {"node": report.nodeid, "when": report.when, "outcome": report.outcome}
    _append(OUTCOMES, row | {"commit": current_commit(), "at": _now()})


# ---- the report --------------------------------------------------------------------------------


def _read(folder: Path, name: str) -> list[dict[str, Any]]:
    path = folder / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def outcome_of(phases: list[dict[str, Any]]) -> str:
    """One word for a test's phases: passed, failed, error (setup/teardown), skipped, not run."""
    if not phases:
        return "not run"
    by = {p["when"]: p["outcome"] for p in phases}
    if by.get("setup") == "failed" or by.get("teardown") == "failed":
        return "error"
    if "skipped" in by.values():
        return "skipped"
    return by.get("call", "not run")


def _gap(values: list[float]) -> str:
    return f"{max(values):.2f} s" if values else "—"


def report(
    collected: list[str],
    records: list[dict[str, Any]],
    outcomes: list[dict[str, Any]],
    command: str,
) -> tuple[str, bool]:
    """The Markdown report, and whether every collected test passed."""
    nodes = list(dict.fromkeys([*collected, *(r["node"] for r in records)]))
    phases: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in outcomes:
        phases[row["node"]].append(row)
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in records:
        runs[row["node"]].append(row)
    verdicts = {node: outcome_of(phases[node]) for node in nodes}
    bad = {node: v for node, v in verdicts.items() if v != "passed"}
    commits = sorted({r["commit"] for r in [*records, *outcomes]})
    times = sorted(r["at"] for r in [*records, *outcomes])
    lines = ["# Reliability report", "", f"<!-- Generated by `make reliability` ({command}); "]
    lines[-1] += "do not edit. -->"
    lines.append("")
    if bad:
        lines.append(
            f"**FAILED**: {len(bad)} of {len(nodes)} reliability tests did not pass "
            f"({', '.join(f'{n}: {v}' for n, v in bad.items())}). These figures are not the "
            "evidence of a green run."
        )
    else:
        lines.append(f"All {len(nodes)} collected reliability tests passed.")
    lines.append("")
    if len(commits) == 1:
        lines.append(f"Commit: `{commits[0]}`.")
    else:
        lines.append(
            f"Rows span {len(commits)} commits ({', '.join(commits)}): each names its own."
        )
    if times:
        lines.append(f"Runs from {times[0]} to {times[-1]} (UTC).")
    lines += [
        "",
        "| scenario | test | outcome | jobs | lost | duplicated | owner crashes | "
        "worst failover gap | invariants | commit | at (UTC) |",
        "|---|---|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for node in nodes:
        mine = runs[node]
        scenario = ", ".join(dict.fromkeys(r["scenario"] for r in mine)) or "—"
        figures = ["—"] * 4
        if mine:
            figures = [str(sum(r[k] for r in mine)) for k in ("jobs", "lost", "duplicated")]
            figures.append(str(sum(r["owner_crashes"] for r in mine)))
        gap = _gap([r["worst_gap_s"] for r in mine if r.get("worst_gap_s") is not None])
        checked = [r["invariants"] for r in mine if r.get("invariants") is not None]
        invariants = (
            "—" if not checked else "held" if not any(checked) else f"{sum(checked)} broken"
        )
        stamps = phases[node] or mine
        commit = ", ".join(sorted({r["commit"] for r in [*mine, *phases[node]]})) or "—"
        at = max(r["at"] for r in stamps) if stamps else "—"
        lines.append(
            f"| {scenario} | `{node}` | {verdicts[node]} | {' | '.join(figures)} | {gap} | "
            f"{invariants} | `{commit}` | {at} |"
        )
    notes = {}
    for row in records:
        if row.get("note"):
            notes[row["scenario"]] = row["note"]
    if notes:
        lines += ["", "What each scenario did and measured (its last run):", ""]
        lines += [f"- **{s}**: {n}" for s, n in notes.items()]
    lines += [
        "",
        "Outcome: the test's own verdict (a row without figures failed or was not run before it",
        "recorded). Lost: a job sent or accepted that never ended; duplicated: a job that ended",
        "more than once; owner crashes: an owner process that exited without being killed by the",
        "test; failover gap: from a kill -9 (of an owner or a broker node), a freeze or a cut",
        "connection until an owner answered again; invariants: the checker `tests/support/invariants.py`",
        "over the run's whole event log against every job it sent (held, or how many broke).",
        "",
    ]
    return "\n".join(lines), not bad


def main(argv: list[str]) -> int:
    """``python -m tests.support.reliability DIR [COMMAND]``: print DIR's report; 1 if any test did not
    pass."""
    folder = Path(argv[0])
    command = argv[1] if len(argv) > 1 else "make reliability"
    collected = [row["node"] for row in _read(folder, COLLECTED)]
    text, green = report(collected, _read(folder, RECORDS), _read(folder, OUTCOMES), command)
    print(text, end="")
    return 0 if green else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
