"""What a history did, measured the same way for the recorded log and a simulated one.

Waits are from a job's acceptance to its first start (jobs accepted in the window that started),
as results, the owner's metrics and usage count them; percentiles interpolate between ranks.
Utilisation is the QPU's busy time (the run intervals `consumers.tools.eventlog.model.build_timeline`
folds) over the history's own span, first event to last, as the HTML timeline's summary reports
it; deadlines and allocations missed are read from the error codes of the final results. Start
orders are compared position by position, counting from 1. QPU seconds per account are the
ledger's (`qpu_by_account`: the history folded with `OwnerState.apply`). Pure: events in, plain data out.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from consumers.core.ledger import Ledger
from consumers.core.state import OwnerState
from consumers.tools.eventlog.model import build_timeline
from schemas.context import VerifiedContext
from schemas.enums import ErrorCode
from schemas.envelope import Event
from schemas.events import AcceptedFacts, Topic, payload_of

MISSED_DEADLINE = frozenset({ErrorCode.DEADLINE_EXCEEDED, ErrorCode.QUEUE_AGE_EXCEEDED})
MISSED_ALLOCATION = frozenset({ErrorCode.ALLOCATION_ENDED})
NO_ACCOUNT = "(none)"


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1), interpolated linearly between the closest ranks (numpy's and
    Prometheus' default)."""
    ordered = sorted(values)
    rank = min(max(q, 0.0), 1.0) * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _spread(values: list[float]) -> dict[str, float | int]:
    return {
        "n": len(values),
        "p50": round(percentile(values, 0.5), 3),
        "p95": round(percentile(values, 0.95), 3),
    }


def start_order(events: Sequence[Event]) -> list[str]:
    """Job ids in the order of their first start."""
    seen: dict[str, None] = {}
    for event in events:
        if event.topic == Topic.JOB_STARTED and event.job_id and event.job_id not in seen:
            seen[event.job_id] = None
    return list(seen)


def measure(events: Sequence[Event], span: tuple[datetime, datetime]) -> dict[str, Any]:
    """The figures of one history; utilisation over `span` (its first and last moment)."""
    arrived: dict[str, tuple[datetime, str, str]] = {}
    first_start: dict[str, datetime] = {}
    ended: Counter[str] = Counter()
    codes: Counter[ErrorCode] = Counter()
    topics: Counter[str] = Counter()
    term = 0
    for event in events:
        if event.term is not None and event.term < term:
            continue  # written by a fenced-off owner: it changed nothing
        if event.topic == Topic.OWNER_ACTIVATED and event.term is not None:
            term = event.term
        topics[event.topic] += 1
        job_id = event.job_id or ""
        if event.topic == Topic.JOB_ACCEPTED:
            try:
                accepted = payload_of(event, AcceptedFacts)
            except ValueError:
                continue
            facts = accepted.job
            verified = accepted.verified or VerifiedContext.claimed(facts.slurm)
            account = verified.account or NO_ACCOUNT
            arrived[job_id] = (event.at, facts.job_class, account)
        elif event.topic == Topic.JOB_STARTED:
            first_start.setdefault(job_id, event.at)
        elif event.result is not None and job_id in arrived:
            ended[event.result.state.value] += 1
            if event.result.error is not None:
                codes[event.result.error.code] += 1
    waits: list[float] = []
    by_class: dict[str, list[float]] = defaultdict(list)
    by_account: dict[str, list[float]] = defaultdict(list)
    for job_id, (at, job_class, account) in arrived.items():
        if job_id in first_start:
            wait_s = max((first_start[job_id] - at).total_seconds(), 0.0)
            waits.append(wait_s)
            by_class[job_class].append(wait_s)
            by_account[account].append(wait_s)
    begin, end = span
    span_s = max((end - begin).total_seconds(), 0.0)
    busy_s = sum(
        max((min(r.ended_at, end) - max(r.started_at, begin)).total_seconds(), 0.0)
        for r in build_timeline(events).runs
    )
    return {
        "jobs": {
            "accepted": len(arrived),
            "started": sum(1 for j in arrived if j in first_start),
            "ended": dict(sorted(ended.items())),
            "unfinished": len(arrived) - sum(ended.values()),
        },
        "wait_s": {
            "all": _spread(waits) if waits else {"n": 0},
            "by_class": {k: _spread(v) for k, v in sorted(by_class.items())},
            "by_account": {k: _spread(v) for k, v in sorted(by_account.items())},
        },
        "busy_s": round(busy_s, 3),
        "span_s": round(span_s, 3),
        "utilisation": round(busy_s / span_s, 4) if span_s > 0 else 0.0,
        "preemptions": topics[Topic.JOB_PREEMPTED],
        "missed_deadline": sum(codes[c] for c in MISSED_DEADLINE),
        "missed_allocation": sum(codes[c] for c in MISSED_ALLOCATION),
        "over_runtime": codes[ErrorCode.MAX_RUNTIME_EXCEEDED],
        "calibrations": topics[Topic.CALIBRATION_STARTED],
        "calibrations_due": topics[Topic.CALIBRATION_DUE],
        "qpu_s_by_account": qpu_by_account(events),
    }


def qpu_by_account(events: Sequence[Event]) -> dict[str, float]:
    """QPU seconds per verified account, as the owner's ledger charges them: the events folded
    with `OwnerState.apply` (so recorded and simulated usage are counted alike)."""
    state = OwnerState(ledger=Ledger(bucket_s=1, keep_s=None))
    for event in events:
        state.apply(event)
    return {
        account or NO_ACCOUNT: round(totals.qpu_s, 3)
        for account, totals in sorted(state.ledger.accounts.items())
    }


def compare(recorded: Sequence[Event], simulated: Sequence[Event]) -> dict[str, Any]:
    """Both histories measured, each over its own span (its utilisation), and how their start
    orders agree (`first_difference`: the first position where they differ, counting from 1).
    `span` is from the first event to the last of either."""
    moments = [e.at for e in (*recorded, *simulated)]
    if not moments:
        empty = measure([], (datetime.min, datetime.min))
        return {"recorded": empty, "simulated": empty, "start_order": {"same": True}}
    span = (min(moments), max(moments))
    ours, theirs = start_order(recorded), start_order(simulated)
    difference = next(
        (i for i, (a, b) in enumerate(zip(ours, theirs, strict=False), start=1) if a != b),
        None if len(ours) == len(theirs) else min(len(ours), len(theirs)) + 1,
    )
    return {
        "span": {"from": span[0].isoformat(), "to": span[1].isoformat()},
        "recorded": measure(recorded, _own_span(recorded, span)),
        "simulated": measure(simulated, _own_span(simulated, span)),
        "start_order": {
            "same": difference is None,
            "first_difference": difference,
            "recorded_starts": len(ours),
            "simulated_starts": len(theirs),
        },
    }


def _own_span(
    events: Sequence[Event], fallback: tuple[datetime, datetime]
) -> tuple[datetime, datetime]:
    """A history's first and last moment (`fallback` for an empty one)."""
    if not events:
        return fallback
    moments = [e.at for e in events]
    return min(moments), max(moments)
