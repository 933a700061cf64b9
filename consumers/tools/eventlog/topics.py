"""The event log's vocabulary: which topics mean what to its readers, across the log's ages.

The topics and payload fields the readers here interpret (`consumers.tools.eventlog.model`'s
timeline fold, `consumers.tools.eventlog.describe`'s words and job histories) are named here,
including those of logs written before the event-sourced owner (``job.queued``,
``owner.active``, the job's fields at the top of ``data``). Pure.
"""

from __future__ import annotations

from typing import Any

from schemas.enums import CommandName
from schemas.envelope import Event
from schemas.events import FINAL_TOPICS as FINAL_TOPIC_OF_STATE
from schemas.events import Topic

LEGACY_QUEUED = "job.queued"  # the arrival topic before the event-sourced owner
ARRIVAL_TOPICS = frozenset({Topic.JOB_ACCEPTED.value, LEGACY_QUEUED})
START_TOPIC = Topic.JOB_STARTED.value
PREEMPTED_TOPIC = Topic.JOB_PREEMPTED.value
REQUEUED_TOPIC = Topic.JOB_REQUEUED.value
RETRYING_TOPIC = Topic.JOB_RETRYING.value
RESUBMITTED_TOPIC = Topic.JOB_RESUBMITTED.value  # a job that ended ERROR waits again
ACTIVATED_TOPICS = frozenset({Topic.OWNER_ACTIVATED.value, "owner.active"})
FINAL_TOPICS = {topic.value: state.value for state, topic in FINAL_TOPIC_OF_STATE.items()}
PREEMPTED = "PREEMPTED"
INTERRUPTED = "INTERRUPTED"
RUNNING = "RUNNING"
BACK_STATES = {
    PREEMPTED_TOPIC: PREEMPTED,
    REQUEUED_TOPIC: INTERRUPTED,
    RETRYING_TOPIC: "ERROR",
    RESUBMITTED_TOPIC: INTERRUPTED,
}
PERIOD_KINDS = ("calibration", "pause", "drain", "maintenance", "down", "reservation")
RESERVATION = "reservation"  # a band per reservation window, as the log last set it


def control_topic(command: CommandName) -> str:
    """The topic a control command's event is logged under (``control.<command>``)."""
    return f"{Topic.CONTROL.value}.{command.value}"


# Period kinds, each opened and closed by these topics (a DOWN backend, operator commands).
PERIOD_OPEN = {
    Topic.CALIBRATION_STARTED.value: "calibration",
    control_topic(CommandName.PAUSE): "pause",
    control_topic(CommandName.DRAIN): "drain",
    Topic.QPU_DOWN.value: "down",
}
PERIOD_CLOSE = {
    Topic.CALIBRATION_COMPLETE.value: ("calibration",),
    control_topic(CommandName.RESUME): ("pause", "drain"),
    Topic.QPU_UP.value: ("down",),
}
MODE_TOPIC = control_topic(CommandName.MODE)
RESERVATION_SET = {
    control_topic(CommandName.RESERVATION_CREATE),
    control_topic(CommandName.RESERVATION_UPDATE),
}
RESERVATION_DELETE = control_topic(CommandName.RESERVATION_DELETE)
MAINTENANCE = "maintenance"


def trace_id_of(event: Event) -> str | None:
    """The W3C trace id an arrival recorded: its ``trace.traceparent`` (``job.accepted``)."""
    trace = event.data.get("trace")
    parent = trace.get("traceparent") if isinstance(trace, dict) else event.data.get("traceparent")
    if isinstance(parent, str) and parent.count("-") == 3:
        return parent.split("-")[1]
    return None


def job_field(event: Event, name: str) -> Any:
    """A field of the job an arrival carries (``data.job``; top-level ``data`` in old logs)."""
    job = event.data.get("job")
    return job.get(name) if isinstance(job, dict) else event.data.get(name)
