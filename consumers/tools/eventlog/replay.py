"""`qsched events replay`: the owner's state at a point of the log, rebuilt with its own `apply`.

Theory of operation. The log is folded from its first record with `OwnerState.apply`, the one
writer of the owner's state, exactly as a standby folds it at activation; nothing here
interprets an event itself. `replay` reports the state at ``--from`` (just before the first
event at or after it) and at ``--to`` (after the last event up to it): the QPU state, mode and
epoch, the running job, waiting jobs by class, and decayed usage per account and user as of
that moment. When retention has removed the start of the log (the first record is not offset 0)
the fold starts at the first ``owner.snapshot`` in what is left, as activation does; events
before it are counted as skipped. With `explain`, each report lists the events the fold ignored
up to its point, with their offsets and why (`OwnerState.ignored_events`). Pure: records in,
reports out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from consumers.core.snapshot import from_data
from consumers.core.state import OwnerState
from consumers.core.view import queue_entries
from consumers.tools.eventlog.reader import Bound, LogRecord
from schemas.events import Snapshot, Topic, payload_of
from schemas.policy import Policy

USAGE_DIGITS = 3


@dataclass(frozen=True)
class StatePoint:
    """The state at one point of the log, as plain data (`report`)."""

    label: str
    report: dict[str, Any]


def _reached(bound: Bound, record: LogRecord) -> bool:
    """Whether `record` is at or past `bound` (an offset or a time)."""
    if isinstance(bound, int):
        return record.offset >= bound
    return record.event.at >= bound


def replay(
    records: Iterable[LogRecord],
    policy: Policy,
    start: Bound | None = None,
    end: datetime | None = None,
    *,
    jobs: bool = False,
    explain: bool = False,
) -> list[StatePoint]:
    """The state at `start` (when given) and at the end of `records`.

    Args:
        records: the log in order, from its first record up to the ``--to`` bound.
        policy: for the usage half-life and the order of the waiting jobs.
        start: report the state just before the first record at or past this bound too.
        end: the ``--to`` time, when it was a time (usage is decayed to it); else the last
            event's time.
        jobs: list the waiting jobs in policy order in each report.
        explain: list the events the fold ignored, with why, in each report.

    Returns:
        One point per bound: ``from`` (if `start`), then ``to``.
    """
    state = OwnerState.for_half_life(policy.fair_share_half_life_s)
    points: list[StatePoint] = []
    first_offset: int | None = None
    skipped = 0
    last: LogRecord | None = None
    ignored: list[dict[str, Any]] = []

    def point(label: str, at: datetime | None) -> StatePoint:
        report = state_report(state, policy, at, last, skipped=skipped, jobs=jobs)
        if explain:
            report["ignored_events"] = list(ignored)
        return StatePoint(label, report)

    for record in records:
        if first_offset is None:
            first_offset = record.offset
        if start is not None and not points and _reached(start, record):
            points.append(point("from", _moment(start, last)))
        if first_offset > 0 and state.events == 0:
            if record.event.topic != Topic.OWNER_SNAPSHOT:
                skipped += 1  # retention removed the start: wait for a snapshot
                last = record
                continue
            state = from_data(
                payload_of(record.event, Snapshot).state, policy.fair_share_half_life_s
            )
        before = state.ignored
        state.apply(record.event)
        if explain and state.ignored > before:
            why = state.ignored_events[-1]
            ignored.append(
                {"offset": record.offset, "event_id": why.event_id, "topic": why.topic}
                | {"job_id": why.job_id, "why": why.why}
            )
        last = record
    if start is not None and not points:
        points.append(point("from", _moment(start, last)))
    moment = end or (last.event.at if last is not None else None)
    points.append(point("to", moment))
    return points


def _moment(bound: Bound, last: LogRecord | None) -> datetime | None:
    if isinstance(bound, datetime):
        return bound
    return last.event.at if last is not None else None


def state_report(
    state: OwnerState,
    policy: Policy,
    at: datetime | None,
    last: LogRecord | None,
    *,
    skipped: int = 0,
    jobs: bool = False,
) -> dict[str, Any]:
    """What the state says at `at`, as JSON-ready data.

    Args:
        state: the fold so far.
        policy: for the order of the waiting jobs and the classes to list.
        at: the moment reported (usage is decayed to it); None for an empty log.
        last: the last record folded (its offset and event id are reported).
        skipped: records before the first snapshot of a log whose start retention removed.
        jobs: include the waiting jobs in policy order.
    """
    run = state.running
    by_class = Counter(job.job_class for job in state.waiting.values())
    running = None
    if run is not None:
        running = {
            "job_id": run.job.job_id,
            "job_class": run.job.job_class,
            "user": run.job.user,
            "account": run.job.account,
            "shots": run.job.remaining_shots,
            "started_at": run.started_at.isoformat(),
            "attempt": run.attempt,
            "epoch": run.epoch,
            "preempting": run.preempting,
        }
    report: dict[str, Any] = {
        "at": at.isoformat() if at is not None else None,
        "offset": last.offset if last is not None else None,
        "event_id": last.event.event_id if last is not None else None,
        "events": state.events,
        "ignored": state.ignored,
        "skipped": skipped,
        "term": state.term,
        "owner_id": state.owner_id,
        "qpu": state.qpu.value,
        "mode": state.effective_mode(policy.mode).value,
        "mode_message": state.mode_message,
        "epoch": state.epoch,
        "calibrated_at": state.calibrated_at.isoformat() if state.calibrated_at else None,
        "calibration_pending": state.calibration_pending,
        "running": running,
        "waiting": len(state.waiting),
        "waiting_by_class": {
            name: by_class[name]
            for name in (*policy.class_names, *sorted(by_class))
            if by_class[name]
        },
        "ended": dict(sorted(Counter(s.value for s in state.finished.values()).items())),
        "usage_s": _usage(state, at),
    }
    if jobs and at is not None:
        report["jobs"] = [
            entry.model_dump(mode="json", exclude_none=True)
            for entry in queue_entries(state, policy, at)
        ]
    return report


def _usage(state: OwnerState, at: datetime | None) -> dict[str, dict[str, float]]:
    """Decayed QPU-seconds per account, per account/user and per class, as of `at`."""
    if at is None:
        return {"accounts": {}, "users": {}, "classes": {}}

    def rounded(values: dict[str, float]) -> dict[str, float]:
        return {k: round(v, USAGE_DIGITS) for k, v in sorted(values.items())}

    return {
        "accounts": rounded(state.account_usage.snapshot(at)),
        "users": rounded(state.user_usage.snapshot(at)),
        "classes": rounded(state.class_usage.snapshot(at)),
    }


def render(point: StatePoint) -> str:
    """A state report as aligned text for a terminal."""
    r = point.report
    lines = [
        f"state {point.label} {r['at'] or '(empty log)'}: offset {r['offset']}, "
        f"{r['events']} events applied, {r['ignored']} ignored"
        + (f", {r['skipped']} skipped before the first snapshot" if r["skipped"] else ""),
        f"  QPU {r['qpu']}  mode {r['mode']}"
        + (f" ({r['mode_message']})" if r["mode_message"] else "")
        + f"  epoch {r['epoch']}"
        + (f" calibrated {r['calibrated_at']}" if r["calibrated_at"] else "")
        + ("  calibration pending" if r["calibration_pending"] else "")
        + f"  term {r['term']} owner {r['owner_id'] or '-'}",
    ]
    run = r["running"]
    if run is not None:
        lines.append(
            f"  running {run['job_id']} {run['job_class']} user {run['user']} "
            f"{run['shots']} shots since {run['started_at']} (attempt {run['attempt']}, "
            f"epoch {run['epoch']})"
            + (f"; preempting: {run['preempting']}" if run["preempting"] else "")
        )
    else:
        lines.append("  running: nothing")
    by_class = ", ".join(f"{k} {v}" for k, v in r["waiting_by_class"].items()) or "none"
    lines.append(f"  waiting {r['waiting']}: {by_class}")
    for entry in r.get("jobs", []):
        where = entry.get("position") or entry.get("held") or ""
        lines.append(
            f"    {where!s:>4} {entry['job_id'][:8]} {entry['job_class']:<12} "
            f"{entry['user']:<10} prio {entry['priority']} {entry['shots']} shots"
        )
    ended = ", ".join(f"{k} {v}" for k, v in r["ended"].items()) or "none"
    lines.append(f"  ended: {ended}")
    for why in r.get("ignored_events", []):
        job = f" {why['job_id']}" if why["job_id"] else ""
        lines.append(f"  ignored at offset {why['offset']}: {why['topic']}{job}: {why['why']}")
    usage = r["usage_s"]
    for what in ("accounts", "users"):
        shown = ", ".join(f"{k or '(none)'} {v:g}" for k, v in usage[what].items()) or "none"
        lines.append(f"  usage per {what[:-1]} (decayed QPU-s): {shown}")
    return "\n".join(lines)
