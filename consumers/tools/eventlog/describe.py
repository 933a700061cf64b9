"""One event in words, and a job's events in order: what ``qsched events tail`` and
``qsched history`` print, and what ``--json`` and the jsonl export write. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from consumers.tools.eventlog.sessions import SessionLog, ended_summary, opened_summary
from consumers.tools.eventlog.shapes import HistoryEntry, JobHistory
from consumers.tools.eventlog.topics import (
    ACTIVATED_TOPICS,
    ARRIVAL_TOPICS,
    FINAL_TOPICS,
    MODE_TOPIC,
    PREEMPTED_TOPIC,
    REQUEUED_TOPIC,
    RETRYING_TOPIC,
    START_TOPIC,
    job_field,
    trace_id_of,
)
from schemas.envelope import Event
from schemas.events import Topic


def summary(event: Event) -> str:
    """A short human description of what `event` says, beyond its topic."""
    data = event.data
    parts: list[str] = []
    if event.topic in ARRIVAL_TOPICS:
        parts.append(
            f"{job_field(event, 'shots') or '?'} shots, "
            f"priority {job_field(event, 'priority') or 0}"
        )
    elif event.topic == START_TOPIC:
        shots = f"{data['shots']} shots, " if "shots" in data else ""
        parts.append(f"{shots}attempt {data.get('attempt', 1)} on {data.get('backend', '?')}")
        if "epoch" in data:
            parts.append(f"epoch {data['epoch']}")
    elif event.topic in (PREEMPTED_TOPIC, REQUEUED_TOPIC, RETRYING_TOPIC):
        parts.append(f"{data.get('shots_done', '?')}/{data.get('shots', '?')} shots done")
    elif event.topic == Topic.JOB_PROGRESS.value and "shots_done" in data:
        parts.append(f"{data['shots_done']} shots done")
    elif event.progress is not None:
        parts.append(f"{event.progress.shots_done}/{event.progress.shots} shots")
    elif event.topic == Topic.JOB_PREEMPTING.value and data.get("challenger"):
        parts.append(f"for {str(data['challenger'])[:8]}")
    elif event.topic == Topic.JOB_STOPPING.value and "state" in data:
        parts.append(f"will end {data['state']}")
    elif event.result is not None:
        result = event.result
        parts.append(f"{sum(result.counts.values())}/{result.shots} shots")
        if result.epoch is not None:
            parts.append(f"epoch {result.epoch}")
        if result.error is not None:
            parts.append(result.error.code.value)
    elif event.topic in ACTIVATED_TOPICS and "term" in data:
        parts.append(f"term {data['term']}")
    elif event.topic.startswith("calibration.") and "epoch" in data:
        parts.append(f"epoch {data['epoch']}")
    elif event.topic == MODE_TOPIC and "mode" in data:
        parts.append(f"mode {data['mode']}")
    elif event.topic == Topic.JOB_HELD.value and "by" in data:
        parts.append(f"{'operator' if data.get('operator') else 'user'} hold by {data['by']}")
    elif event.topic == Topic.SESSION_OPENED.value:
        parts.append(opened_summary(event))
    elif event.topic == Topic.SESSION_ENDED.value:
        parts.append(ended_summary(event))
    elif event.topic == Topic.JOB_UPDATED.value:
        changed = [f"{k} {data[k]}" for k in ("priority", "job_class") if data.get(k) is not None]
        parts.append(", ".join(changed).replace("job_class", "class"))
    if event.topic.startswith("control.") and event.user:
        parts.append(f"by {event.user}")  # the audit trail: who sent the command
    if event.qpu_state is not None:
        parts.append(f"QPU {event.qpu_state.value}")
    if data.get("ok") is False:
        parts.append("refused")
    return ", ".join(parts)


def event_record(event: Event, offset: int | None = None) -> dict[str, Any]:
    """An event as a plain JSON-ready dict (what ``--json`` and the jsonl export write)."""
    record = event.model_dump(mode="json", exclude_none=True)
    if not record.get("data"):
        record.pop("data", None)
    if offset is not None:
        record["offset"] = offset
    return record


def job_histories(
    events: Iterable[Event], job_prefix: str, ignored: Mapping[str, str] | None = None
) -> dict[str, JobHistory]:
    """Every job whose id starts with `job_prefix`, with its events in order.

    Args:
        events: the log, in order.
        job_prefix: a job id or its first characters.
        ignored: why the owner's state ignored some events (event id -> why), when known.
    """
    ignored = ignored or {}
    found: dict[str, JobHistory] = {}
    sessions = SessionLog()
    for event in events:
        sessions.see(event)
        if event.job_id is None or not event.job_id.startswith(job_prefix):
            continue
        history = found.setdefault(event.job_id, JobHistory(event.job_id))
        history.job_class = history.job_class or event.job_class
        if event.topic in ARRIVAL_TOPICS:
            history.session_id = history.session_id or job_field(event, "session_id")
        if event.topic in ARRIVAL_TOPICS or event.topic == START_TOPIC:
            history.user = history.user or event.user
        history.trace_id = history.trace_id or trace_id_of(event)
        if event.topic in ARRIVAL_TOPICS and history.arrived_at is None:
            history.arrived_at = event.at
        elif event.topic == START_TOPIC and history.first_started_at is None:
            history.first_started_at = event.at
        elif event.topic in FINAL_TOPICS:
            history.final_state = FINAL_TOPICS[event.topic]
            history.ended_at = event.at
        history.entries.append(
            HistoryEntry(
                event.at, event.topic, summary(event), event.reason, ignored.get(event.event_id)
            )
        )
    for history in found.values():
        sessions.add_to(history)  # its session's opening and end, in time order
    return found
