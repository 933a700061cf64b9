"""What the owner rebuilds from the event log when it becomes active.

The owner keeps no state that a replay of the stream cannot rebuild: which jobs finished (and
their results, to answer a redelivered job without running it again), which were announced as
queued, the mode and its message, whether operators paused or drained the QPU, and cancels
requested for jobs that had not reached the owner yet. `apply` folds one event in; it is pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.enums import CommandName, Mode, QPUState
from schemas.messages import Event, JobResult

DISPATCH_STATES = {
    f"control.{CommandName.PAUSE.value}": QPUState.PAUSED,
    f"control.{CommandName.DRAIN.value}": QPUState.DRAINING,
    f"control.{CommandName.RESUME.value}": QPUState.IDLE,
}


@dataclass
class History:
    """State folded from the event log."""

    finished: dict[str, JobResult] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    mode: Mode = Mode.PRODUCTION
    mode_message: str | None = None
    dispatch: QPUState = QPUState.IDLE
    pending_cancels: dict[str, str] = field(default_factory=dict)
    events: int = 0

    def apply(self, event: Event) -> None:
        """Fold one event in."""
        self.events += 1
        topic = event.topic
        if event.result is not None and event.result.state.is_final and event.job_id:
            self.finished[event.job_id] = event.result
            self.pending_cancels.pop(event.job_id, None)
        elif topic == "job.queued" and event.job_id:
            self.seen.add(event.job_id)
        elif not event.data.get("ok", True):
            return
        elif topic in DISPATCH_STATES:
            self.dispatch = DISPATCH_STATES[topic]
        elif topic == f"control.{CommandName.MODE.value}":
            self.mode = Mode(event.data["mode"])
            self.mode_message = event.data.get("message")
        elif (
            topic == f"control.{CommandName.CANCEL.value}"
            and event.job_id
            and event.job_id not in self.finished
            and event.data.get("pending")
        ):
            self.pending_cancels[event.job_id] = event.user or "operator"
