"""Export a `Timeline` to the Chrome Trace Event Format (JSON object form), for Perfetto UI and
``chrome://tracing``.

Layout: process 1 "QPU" has a "runs" thread (one complete slice ``X`` per run, ending where it
ended, was preempted or interrupted) and one thread per kind of period (calibration, pause,
drain, maintenance, down), plus counters "QPU busy" and "QPU utilisation (%)". Process 2
"queues" has one "arrivals" thread per job class, a 1 µs slice per arrival (flow events must
bind to a slice), counters "waiting: <class>", and a flow arrow (``s`` → ``f``, ``bp: e``) from
each arrival to the job's first run. Process 3 "emulator lanes" has one thread per lane with
its runs (as slices like the QPU's). Timestamps are integer microseconds since the Unix epoch.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from consumers.tools.eventlog.shapes import Run, Timeline
from consumers.tools.eventlog.topics import PERIOD_KINDS

QPU_PID = 1
LANES_PID = 3  # emulator lanes, one thread each (pid 2 is the queues)
QUEUES_PID = 2
RUNS_TID = 1
FLOW_CAT = "flow"


def to_us(moment: datetime) -> int:
    """Microseconds since the Unix epoch."""
    return round(moment.timestamp() * 1_000_000)


def export_trace(timeline: Timeline) -> dict[str, Any]:
    """The trace as a JSON-ready object: ``{"traceEvents": [...], "displayTimeUnit": "ms"}``."""
    events: list[dict[str, Any]] = []
    events += _metadata(QPU_PID, "QPU", {RUNS_TID: "runs"})
    period_tids = {kind: 10 + i for i, kind in enumerate(PERIOD_KINDS)}
    used_kinds = {p.kind for p in timeline.periods}
    events += _metadata(
        QPU_PID, None, {tid: kind for kind, tid in period_tids.items() if kind in used_kinds}
    )
    events += [_run_slice(run) for run in timeline.runs]
    lane_tids = {
        lane: 1 + i for i, lane in enumerate(sorted({r.lane or "" for r in timeline.lane_runs}))
    }
    if lane_tids:
        events += _metadata(LANES_PID, "emulator lanes", {t: n for n, t in lane_tids.items()})
    for run in timeline.lane_runs:
        events.append(_run_slice(run) | {"pid": LANES_PID, "tid": lane_tids[run.lane or ""]})
    for period in timeline.periods:
        start = to_us(period.started_at)
        events.append(
            {
                "name": period.kind,
                "cat": "period",
                "ph": "X",
                "ts": start,
                "dur": max(to_us(period.ended_at) - start, 0),
                "pid": QPU_PID,
                "tid": period_tids[period.kind],
                "args": {"reason": period.reason or "", "open_at_end": period.open},
            }
        )
    events += _utilisation(timeline)
    events += _queues(timeline)
    return {"traceEvents": events, "displayTimeUnit": "ms"}


def _metadata(pid: int, process: str | None, threads: dict[int, str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if process is not None:
        found.append(
            {"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": process}}
        )
        found.append(
            {
                "name": "process_sort_index",
                "ph": "M",
                "pid": pid,
                "tid": 0,
                "args": {"sort_index": pid},
            }
        )
    for tid, name in threads.items():
        found.append(
            {"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}}
        )
        found.append(
            {
                "name": "thread_sort_index",
                "ph": "M",
                "pid": pid,
                "tid": tid,
                "args": {"sort_index": tid},
            }
        )
    return found


def _run_slice(run: Run) -> dict[str, Any]:
    start = to_us(run.started_at)
    return {
        "name": f"{run.job_id[:8]} {run.job_class}",
        "cat": "run",
        "ph": "X",
        "ts": start,
        "dur": max(to_us(run.ended_at) - start, 0),
        "pid": QPU_PID,
        "tid": RUNS_TID,
        "args": {
            "job_id": run.job_id,
            "user": run.user or "",
            "job_class": run.job_class,
            "shots": run.shots,
            "epoch": run.epoch,
            "attempt": run.attempt,
            "state": run.state,
            "reason": run.reason or "",
            "end_reason": run.end_reason or "",
        },
    }


def _utilisation(timeline: Timeline) -> list[dict[str, Any]]:
    """A 0/1 busy counter at each run edge, and busy time so far over time so far, in percent."""
    if timeline.first_at is None:
        return []
    t0 = to_us(timeline.first_at)
    found: list[dict[str, Any]] = []
    busy_us = 0
    for run in timeline.runs:
        start, end = to_us(run.started_at), to_us(run.ended_at)
        found.append(_counter("QPU busy", start, {"busy": 1}))
        found.append(_counter("QPU busy", end, {"busy": 0}))
        busy_us += end - start
        elapsed = max(end - t0, 1)
        found.append(
            _counter("QPU utilisation (%)", end, {"utilisation": round(100 * busy_us / elapsed, 2)})
        )
    return found


def _counter(name: str, ts: int, args: dict[str, float]) -> dict[str, Any]:
    return {"name": name, "ph": "C", "ts": ts, "pid": QPU_PID, "args": args}


def _queues(timeline: Timeline) -> list[dict[str, Any]]:
    """Arrival slices per class, waiting counters, and flows from arrival to first start."""
    classes = sorted(
        {c for s in timeline.waiting for c in s.by_class} | {r.job_class for r in timeline.runs}
    )
    tids = {job_class: i + 1 for i, job_class in enumerate(classes)}
    found = _metadata(QUEUES_PID, "queues", {t: f"arrivals: {c}" for c, t in tids.items()})
    for sample in timeline.waiting:
        for job_class, count in sample.by_class.items():
            found.append(
                {
                    "name": f"waiting: {job_class}",
                    "ph": "C",
                    "ts": to_us(sample.at),
                    "pid": QUEUES_PID,
                    "args": {"jobs": count},
                }
            )
    first_runs: dict[str, Run] = {}
    for run in timeline.runs:
        first_runs.setdefault(run.job_id, run)
    last_ts: dict[int, int] = {}
    for flow_id, run in enumerate(
        sorted(
            (r for r in first_runs.values() if r.arrived_at is not None),
            key=lambda r: (r.arrived_at, r.job_id),
        ),
        start=1,
    ):
        assert run.arrived_at is not None
        tid = tids[run.job_class]
        # 1 µs slices on one thread must not overlap: arrivals in the same µs move apart.
        ts = max(to_us(run.arrived_at), last_ts.get(tid, -2) + 1)
        last_ts[tid] = ts
        start = to_us(run.started_at)
        dur = max(to_us(run.ended_at) - start, 0)
        args = {"job_id": run.job_id, "user": run.user or ""}
        name = f"{run.job_id[:8]} queued"
        found.append(
            {
                "name": name,
                "cat": "arrival",
                "ph": "X",
                "ts": ts,
                "dur": 1,
                "pid": QUEUES_PID,
                "tid": tid,
                "args": args,
            }
        )
        flow = {"name": "queued → started", "cat": FLOW_CAT, "id": flow_id}
        found.append(flow | {"ph": "s", "ts": ts, "pid": QUEUES_PID, "tid": tid})
        found.append(
            flow
            | {
                "ph": "f",
                "bp": "e",
                "ts": max(start + min(1, dur), ts),
                "pid": QPU_PID,
                "tid": RUNS_TID,
            }
        )
    return found
