"""The Perfetto / Chrome trace export follows the Trace Event Format and says what the log says."""

from __future__ import annotations

import json

from consumers.tools.eventlog.model import build_timeline
from consumers.tools.eventlog.perfetto import QPU_PID, RUNS_TID, export_trace, to_us
from tests.support.eventlogs import at, big_log, scenario
from tests.support.trace_event_format import violations


def test_the_scenario_export_breaks_no_rule_of_the_trace_event_format() -> None:
    trace = json.loads(json.dumps(export_trace(build_timeline(scenario()))))
    assert violations(trace) == []


def test_a_day_of_thousands_of_jobs_exports_well_formed() -> None:
    trace = export_trace(build_timeline(big_log(3000)))
    assert violations(trace) == []
    assert sum(1 for e in trace["traceEvents"] if e.get("cat") == "run") == 3000


def test_the_checker_catches_what_it_is_for() -> None:
    bad = {
        "traceEvents": [
            {"ph": "X", "name": "a", "ts": 0, "dur": 10, "pid": 1, "tid": 1},
            {"ph": "X", "name": "b", "ts": 5, "dur": 10, "pid": 1, "tid": 1},
            {"ph": "s", "name": "f", "cat": "c", "id": 1, "ts": 50, "pid": 1, "tid": 1},
            {"ph": "Q", "name": "q", "ts": 0, "pid": 1},
            {"ph": "C", "name": "n", "ts": 0, "pid": 1, "args": {"v": "x"}},
        ]
    }
    found = "\n".join(violations(bad))
    for rule in (
        "overlaps",
        "exactly one s and one f",
        "unknown ph",
        "numeric args",
        "thread_name",
    ):
        assert rule in found


def test_runs_are_complete_slices_in_microseconds_with_their_details() -> None:
    trace = export_trace(build_timeline(scenario()))
    runs = [e for e in trace["traceEvents"] if e.get("cat") == "run"]
    assert [(r["args"]["job_id"][0], r["args"]["state"]) for r in runs] == [
        ("a", "DONE"),
        ("b", "PREEMPTED"),
        ("d", "ERROR"),
        ("b", "INTERRUPTED"),
        ("b", "DONE"),
        ("e", "RUNNING"),
    ]
    preempted = runs[1]
    assert (preempted["pid"], preempted["tid"]) == (QPU_PID, RUNS_TID)
    assert preempted["ts"] == to_us(at(4.1)) and preempted["dur"] == 1_100_000  # ends at preempted
    assert preempted["args"]["user"] == "bob" and preempted["args"]["job_class"] == "development"
    assert runs[4]["args"]["epoch"] == 1 and runs[0]["args"]["shots"] == 100


def test_periods_counters_and_flows_are_on_their_own_tracks() -> None:
    events = export_trace(build_timeline(scenario()))["traceEvents"]
    periods = {e["name"]: e for e in events if e.get("cat") == "period"}
    assert set(periods) == {"calibration", "pause", "down", "maintenance"}
    assert len({(p["pid"], p["tid"]) for p in periods.values()} | {(QPU_PID, RUNS_TID)}) == 5
    assert periods["calibration"]["dur"] == 1_500_000
    counters = {e["name"] for e in events if e["ph"] == "C"}
    assert counters == {
        "QPU busy",
        "QPU utilisation (%)",
        "waiting: production",
        "waiting: development",
    }
    starts = [e for e in events if e["ph"] == "s"]
    assert len(starts) == 4  # a, b, d, e: each job's first run, from its arrival
    finish = next(e for e in events if e["ph"] == "f" and e["id"] == starts[0]["id"])
    assert (finish["pid"], finish["tid"]) == (QPU_PID, RUNS_TID) and finish["bp"] == "e"
    names = {(e["name"], e["args"].get("name")) for e in events if e["ph"] == "M"}
    assert ("process_name", "QPU") in names and ("thread_name", "runs") in names
