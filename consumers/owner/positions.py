"""Queue positions pushed to the submitters who asked for them (`JobRequest.position_updates`),
and job receipts (`JobRequest.receipt`: the job's number, once it is accepted).

A job submitted with `position_updates` is told its place in line by a `JobPosition` on its
reply queue: when its position or its hold reason changes, and once when it starts (position 0,
RUNNING; progress messages follow from there). Positions are not events: nothing is logged and
nothing waits for a confirm, so a new owner simply tells every such job where it stands again.

Ordering the whole backlog is O(n log n) (`queue_entries`), so it never runs on the dispatch
path: the owner's loop calls `push_if_due` after dispatching, and a push is due at most every
`owner.position_every_s`, and no sooner than `COST_FACTOR` times what the last one took (on a
huge backlog the pushes slow down instead of taking more than a few percent of the owner); one
push tells at most `MAX_TOLD` jobs, those nearest the front first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from consumers.core.state import OwnerState
from consumers.core.view import queue_entries, run_entry
from consumers.owner.publish import Publisher
from schemas.errors import SchemaError
from schemas.jobs import JobPosition, JobReceipt
from schemas.policy import Policy
from schemas.reports import QueueEntry

log = logging.getLogger("consumers.owner")

COST_FACTOR = 50  # a push every 50x its own cost at most: under 2% of the owner's time
MAX_TOLD = 250  # per push, nearest the front first (the rest next time); few confirms to wait for

Send = Callable[[str, JobPosition], None]  # (reply_to, message)
Seen = tuple[int | None, str | None, str]  # (position, held, state): what a change is


def send_position(publisher: Publisher, reply_to: str, message: JobPosition) -> None:
    """Send a job's position to its submitter: nothing waits for its confirm, and it has its
    own message id, so a failed push is never taken for the job's result reply."""
    try:
        publisher.send(
            "",
            reply_to,
            message,
            message_id=f"{message.job_id}:position",
            correlation_id=message.job_id,
        )
    except SchemaError as exc:
        log.warning("position of %s not sent: %s", message.job_id, exc)


def send_receipt(publisher: Publisher, reply_to: str, message: JobReceipt) -> None:
    """Tell a submitter that asked (`JobRequest.receipt`) its job's number, like a position:
    nothing waits for the confirm, under a message id of its own."""
    try:
        publisher.send(
            "",
            reply_to,
            message,
            message_id=f"{message.job_id}:receipt",
            correlation_id=message.job_id,
        )
    except SchemaError as exc:
        log.warning("receipt of %s not sent: %s", message.job_id, exc)


class PositionPusher:
    """Remembers what each watching job was last told; tells it again when that changes.

    Args:
        every_s: the shortest time between two pushes.
    """

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._told: dict[str, Seen] = {}
        self._due = 0.0

    def push_if_due(
        self, state: OwnerState, policy: Policy, now: datetime, send: Send, monotonic: float
    ) -> int:
        """Send the positions that changed, if a push is due; how many were sent."""
        if monotonic < self._due:
            return 0
        began = time.perf_counter()
        sent = self.push(state, policy, now, send)
        cost_s = time.perf_counter() - began
        self._due = monotonic + max(self.every_s, cost_s * COST_FACTOR)
        return sent

    def push(self, state: OwnerState, policy: Policy, now: datetime, send: Send) -> int:
        """Send every watching job whose place changed since it was last told; how many."""
        watching = {j.job_id: j.reply_to for j in state.waiting.values() if j.position_updates}
        entries: list[QueueEntry] = []
        if watching:
            entries = queue_entries(state, policy, now, job_ids=watching.keys())
        for run in (state.running, *state.lanes.values()):
            if run is not None and run.job.position_updates:
                watching[run.job.job_id] = run.job.reply_to
                entries.append(run_entry(run, now))
        sent = 0
        for entry in sorted(entries, key=_front_first):
            if sent >= MAX_TOLD:
                break
            seen: Seen = (entry.position, entry.held, entry.state.value)
            reply_to = watching.get(entry.job_id)
            if reply_to is None or self._told.get(entry.job_id) == seen:
                continue
            send(reply_to, JobPosition(job_id=entry.job_id, entry=entry))
            self._told[entry.job_id] = seen
            sent += 1
        self._told = {job_id: seen for job_id, seen in self._told.items() if job_id in watching}
        return sent


def _front_first(entry: QueueEntry) -> tuple[int, int]:
    """Running jobs, then waiting ones by position, then held ones."""
    return (0 if entry.position is not None else 1, entry.position or 0)
