"""The owner's log lines for its events: one per job start, end and preemption, per QPU change
and per command (a job's acceptance at debug level; progress and snapshots not at all)."""

from __future__ import annotations

import logging

from schemas.envelope import Event
from schemas.events import Topic

log = logging.getLogger("consumers.owner")

QUIET = {Topic.JOB_PROGRESS, Topic.OWNER_SNAPSHOT}
DEBUG = {Topic.JOB_ACCEPTED, Topic.JOB_DUPLICATE}


def log_event(event: Event) -> None:
    """Write `event`'s line: its topic, job, the operator who sent a command, its reason."""
    topic = event.topic
    if topic in QUIET:
        return
    level = logging.DEBUG if topic in DEBUG else logging.INFO
    who = f" by {event.user}" if event.user and topic.startswith("control.") else ""
    job = f" {event.job_id}" if event.job_id else ""
    reason = f": {event.reason}" if event.reason else ""
    log.log(level, "%s%s%s%s", topic, job, who, reason)
