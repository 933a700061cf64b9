"""`qsched show`'s picture of one job: the owner's live details merged with the event log.

The owner knows a waiting or running job (position, ETA, holds, shots so far); the log knows
every job's times, commands and end. `show_record` merges both into one plain dict (pure, so a
unit test covers it); `fetch_job_events` reads the job's events from the log.
"""

from __future__ import annotations

from typing import Any

from brokers.connection import ACCESS_REFUSED, channel, translated
from brokers.errors import ChannelClosed
from brokers.munge import connection_url
from brokers.stream import events_of, read_stream
from producers.client import QPUClient
from schemas.details import JobDetail
from schemas.envelope import Event
from schemas.events import Topic

FULL_ID_LENGTH = 36  # a job id shorter than this is a prefix, resolved by the owner only
FINAL = {
    Topic.JOB_DONE.value,
    Topic.JOB_ERROR.value,
    Topic.JOB_CANCELED.value,
    Topic.JOB_TIMED_OUT.value,
    Topic.JOB_REJECTED.value,
}


def fetch_job_events(client: QPUClient, job_id: str) -> list[Event] | None:
    """Every event of `job_id` in the log, in order; None when this user may not read the log."""
    settings = client.settings
    url = connection_url(client.urls[0], settings.auth, settings.munge_socket)
    found: list[Event] = []
    with channel(url, name="qsched-show") as ch:
        try:
            with translated("read the event log"):
                for record in read_stream(ch, client.topology.events_stream, "first"):
                    events = events_of(record, settings.max_message_bytes)
                    found += [event for event in events if event.job_id == job_id]
        except ChannelClosed as exc:
            if exc.code != ACCESS_REFUSED:
                raise
            return None
    return found


def show_record(job_id: str, detail: JobDetail | None, events: list[Event]) -> dict[str, Any]:
    """Everything known of one job as one JSON-ready dict (times in ISO 8601).

    Args:
        detail: the owner's answer for a waiting or running job (None: ended or unknown to it).
        events: the job's events from the log (empty when the log could not be read).
    """
    record: dict[str, Any] = {"job_id": job_id}
    if detail is not None:
        record |= detail.model_dump(mode="json", exclude={"factors"})
        record["factors"] = detail.factors
    starts = [e for e in events if e.topic == Topic.JOB_STARTED.value]
    accepted = next((e for e in events if e.topic == Topic.JOB_ACCEPTED.value), None)
    final = next((e for e in events if e.topic in FINAL), None)
    if accepted is not None:
        job = accepted.data.get("job", {})
        record.setdefault("accepted_at", accepted.at.isoformat())
        record.setdefault("user", accepted.user)
        record.setdefault("job_class", accepted.job_class)
        for key in ("priority", "shots", "submitted_at", "session_id"):
            if key in job:
                record.setdefault(key, job[key])
        parent = accepted.data.get("trace", {}).get("traceparent", "")
        if parent.count("-") == 3:
            record.setdefault("trace_id", parent.split("-")[1])
    if starts:
        record.setdefault("started_at", starts[-1].at.isoformat())
        record["first_started_at"] = starts[0].at.isoformat()
    record.setdefault("attempt", len(starts) or 1)
    if final is not None:
        result = final.result
        record["state"] = final.topic.split(".", 1)[1].upper()
        record["ended_at"] = final.at.isoformat()
        if result is not None:
            record["shots_done"] = sum(result.counts.values())
            record["shots"] = record.get("shots", result.shots)
            record["preemptions"] = result.preemptions
            record["epoch"] = result.epoch
            record["error"] = result.error.model_dump(mode="json") if result.error else None
            record["counts"] = dict(sorted(result.counts.items(), key=lambda kv: -kv[1])[:5])
    record["commands"] = [
        {
            "at": e.at.isoformat(),
            "command": e.topic.split(".", 1)[1],
            "by": e.user,
            "ok": e.data.get("ok"),
            "answer": e.reason,
        }
        for e in events
        if e.topic.startswith("control.")
    ]
    record["log_read"] = bool(events)
    return record


ORDER = (
    "state",
    "owner_says",
    "job_class",
    "user",
    "account",
    "priority",
    "shots",
    "shots_done",
    "position",
    "eta_s",
    "held",
    "submitted_at",
    "accepted_at",
    "first_started_at",
    "started_at",
    "ended_at",
    "attempt",
    "preemptions",
    "epoch",
    "session_id",
    "allocation",
    "deadline",
    "trace_id",
    "error",
    "counts",
)


def show_lines(record: dict[str, Any]) -> list[str]:
    """The record as ``key: value`` lines, in a fixed order, skipping what is unknown."""
    lines = [f"job {record['job_id']}"]
    for key in ORDER:
        value = record.get(key)
        if value is None or value == {}:
            continue
        if key == "error":
            value = f"{value['code']}: {value['message']}"
        if key == "eta_s":
            value = f"about {value:.0f} s"
        lines.append(f"  {key + ':':<17} {value}")
    for command in record.get("commands", []):
        verdict = "" if command["ok"] else " (refused)"
        lines.append(
            f"  {'command:':<17} {command['at']} {command['command']} by {command['by']}"
            f"{verdict}: {command['answer']}"
        )
    if not record.get("log_read"):
        lines.append("  (the event log was not read: times and commands not shown)")
    return lines
