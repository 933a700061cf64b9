"""What the owner rebuilds from the event log when it becomes active.

The owner keeps no state that a replay of the stream cannot rebuild: which jobs finished (and
their results, to answer a redelivered job without running it again), which were announced as
queued and by whom (a job id belongs to the user who first submitted it), the mode and its message, whether operators paused or drained the QPU, and cancels
requested for jobs that had not reached the owner yet. `apply` folds one event in; it is pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

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
    users: dict[str, str | None] = field(default_factory=dict)
    mode: Mode = Mode.PRODUCTION
    mode_message: str | None = None
    mode_from_log: bool = False
    dispatch: QPUState = QPUState.IDLE
    pending_cancels: dict[str, str] = field(default_factory=dict)
    events: int = 0
    epoch: int = 0
    calibrated_at: datetime | None = None
    device: str | None = None
    ended_allocations: set[str] = field(default_factory=set)
    runs: list[tuple[str | None, str, float, datetime]] = field(default_factory=list)

    def speaks_for(self, job_id: str | None, user: str | None) -> bool:
        """Whether `user` may act on `job_id`: the id is `user`'s, or nobody's yet."""
        if not job_id or user is None:
            return False
        owner = self.users.get(job_id)
        return owner is None or owner == user

    def apply(self, event: Event) -> None:
        """Fold one event in."""
        self.events += 1
        topic = event.topic
        seconds = _qpu_seconds(event)
        if seconds:
            self.runs.append((event.user, event.job_class or "", seconds, event.at))
        if topic == "calibration.complete":
            self.epoch = int(event.data["epoch"])
            self.calibrated_at = event.at
            self.device = event.data.get("device") or self.device
            return
        if topic == f"control.{CommandName.ALLOCATION_ENDED.value}" and event.data.get("ok"):
            self.ended_allocations.add(str(event.data["allocation"]))
            return
        if event.result is not None and event.result.state.is_final and event.job_id:
            self.finished[event.job_id] = event.result
            self.users.setdefault(event.job_id, event.user)
            self.pending_cancels.pop(event.job_id, None)
        elif topic == "job.queued" and event.job_id:
            self.seen.add(event.job_id)
            self.users.setdefault(event.job_id, event.user)
        elif not event.data.get("ok", True):
            return
        elif topic in DISPATCH_STATES:
            self.dispatch = DISPATCH_STATES[topic]
        elif topic == f"control.{CommandName.MODE.value}":
            self.mode = Mode(event.data["mode"])
            self.mode_message = event.data.get("message")
            self.mode_from_log = True
        elif (
            topic == f"control.{CommandName.CANCEL.value}"
            and event.job_id
            and event.job_id not in self.finished
            and event.data.get("pending")
        ):
            self.pending_cancels[event.job_id] = event.user or "operator"


def _qpu_seconds(event: Event) -> float:
    """QPU time a job's run took, from its final or preempted event (0 for others)."""
    if event.result is not None and event.result.timings.execution_s:
        return float(event.result.timings.execution_s)
    if event.topic == "job.preempted":
        return float(event.data.get("execution_s", 0.0))
    return 0.0
