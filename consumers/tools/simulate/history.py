"""The recorded history as the simulator's inputs: what came from outside, and how long runs took.

Theory of operation. Only what the world did to the owner is replayed; everything the owner
decided is left for the simulated policy to decide again. From the world: arrivals
(``job.accepted`` → `Arrival`, the whole request), operators' commands that the owner applied
(``control.<command>`` → `Command`), the backend going down and up (``qpu.*`` → `Operational`)
and waiting jobs a calibration made invalid (``job.rejected`` of an accepted job →
`Invalidated`). From the QPU: each job's recorded runs give its seconds per shot (all its runs'
seconds over the shots they measured), and a job whose run failed fails again after the same
time. A run on an emulator lane (its ``job.started`` names the lane) is timed apart: lane
seconds per shot say how long the job takes on a lane, never on the QPU. Starts, preemptions,
ends, timeouts, calibration starts: the simulation makes its own.

Events of a stale term (an owner fenced off by a newer one) are skipped, as `apply` skips them.
The records before ``--from`` are folded with `OwnerState.apply` into the state the simulation
starts from (a job running then keeps running). Consecutive arrivals that the owner took in one
intake batch (adjacent in the log, within one loop turn) are marked so the simulation, like the
owner, decides once after the batch. Pure: records in, values out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from consumers.core.commands import Command
from consumers.core.inputs import Arrival, Input, Invalidated, Operational
from consumers.core.state import OwnerState
from consumers.tools.eventlog.reader import Bound, LogRecord
from schemas.context import VerifiedContext
from schemas.control import ControlCommand
from schemas.enums import CommandName, JobState
from schemas.envelope import Event
from schemas.events import ControlApplied, JobAccepted, JobBack, JobStarted, Topic, payload_of
from schemas.jobs import JobError
from schemas.policy import Policy

# Commands that do not change what the QPU does, or whose effect the simulation decides itself.
NOT_REPLAYED = frozenset({CommandName.STATUS, CommandName.QUEUE, CommandName.RELOAD_POLICY})
FINAL = {Topic.JOB_DONE, Topic.JOB_ERROR, Topic.JOB_CANCELED, Topic.JOB_TIMED_OUT}


@dataclass(frozen=True)
class Timed:
    """An input at its recorded time; `batched`: the next input came in the same intake batch."""

    at: datetime
    given: Input
    batched: bool = False


@dataclass
class JobRuns:
    """What the recorded runs of one job say about the QPU's (and the lanes') speed for it."""

    seconds: float = 0.0
    shots: int = 0
    error: JobError | None = None
    error_after_s: float = 0.0
    lane_seconds: float = 0.0
    lane_shots: int = 0

    @property
    def s_per_shot(self) -> float | None:
        """Seconds per shot over its QPU runs (None when no shot was measured there)."""
        return self.seconds / self.shots if self.shots > 0 else None

    @property
    def lane_s_per_shot(self) -> float | None:
        """Seconds per shot over its emulator-lane runs (None when it never ran on a lane)."""
        return self.lane_seconds / self.lane_shots if self.lane_shots > 0 else None

    def add(self, seconds: float, shots: int, lane: bool) -> None:
        """Count a run's measured shots and its seconds, on a lane or the QPU."""
        if lane:
            self.lane_seconds += seconds
            self.lane_shots += shots
        else:
            self.seconds += seconds
            self.shots += shots


@dataclass
class Recorded:
    """The simulator's view of a stretch of the log.

    Attributes:
        start: the owner's state just before the window (empty when it starts the log).
        inputs: what the world did in the window, in log order.
        runs: per job, its recorded runs.
        events: the recorded events of the window (what the recorded owner did).
        first_at, last_at: the window's first and last event times.
    """

    start: OwnerState
    inputs: list[Timed] = field(default_factory=list)
    runs: dict[str, JobRuns] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    first_at: datetime | None = None
    last_at: datetime | None = None

    def default_s_per_shot(self, policy: Policy) -> float:
        """Seconds per shot for a job that never ran: the recorded average, else the policy's."""
        seconds = sum(r.seconds for r in self.runs.values() if r.shots > 0)
        shots = sum(r.shots for r in self.runs.values())
        return seconds / shots if shots > 0 else 1.0 / policy.shot_rate_hz

    def default_lane_s_per_shot(self, policy: Policy) -> float:
        """Seconds per shot on a lane for a job that never ran on one: the recorded lane average,
        else the lanes' pace from the policy, else the QPU's default."""
        seconds = sum(r.lane_seconds for r in self.runs.values() if r.lane_shots > 0)
        shots = sum(r.lane_shots for r in self.runs.values())
        if shots > 0:
            return seconds / shots
        rate = policy.lanes.shot_rate_hz
        return 1.0 / rate if rate else self.default_s_per_shot(policy)


def read_history(
    records: Iterable[LogRecord], policy: Policy, start: Bound | None, batch_s: float
) -> Recorded:
    """Split `records` at `start` and read the window into inputs and the run model.

    Args:
        records: the log from its first record up to the window's end.
        policy: for the start state's usage half-life.
        start: the window's first offset or time (None: the whole log).
        batch_s: the owner's loop turn (``owner.tick_s``): arrivals further apart were not one
            intake batch.
    """
    recorded = Recorded(OwnerState.for_half_life(policy.fair_share_half_life_s))
    runs = _RunTracker(recorded.runs)
    accepted: set[str] = set()
    offsets: list[int] = []
    term = 0
    for record in records:
        event = record.event
        if event.term is not None and event.term < term:
            continue  # a fenced-off owner wrote it: it changed nothing (as `apply` has it)
        if event.topic == Topic.OWNER_ACTIVATED and event.term is not None:
            term = event.term
        runs.see(event)
        if start is not None and not _reached(start, record) and not recorded.events:
            recorded.start.apply(event)
            if event.topic == Topic.JOB_ACCEPTED and event.job_id:
                accepted.add(event.job_id)
            continue
        recorded.events.append(event)
        recorded.first_at = recorded.first_at or event.at
        recorded.last_at = event.at
        given = _input(event, accepted)
        if given is not None:
            recorded.inputs.append(Timed(event.at, given))
            offsets.append(record.offset)
    _mark_batches(recorded.inputs, offsets, timedelta(seconds=batch_s))
    return recorded


def _reached(bound: Bound, record: LogRecord) -> bool:
    if isinstance(bound, int):
        return record.offset >= bound
    return record.event.at >= bound


def _input(event: Event, accepted: set[str]) -> Input | None:
    """The input the world gave the owner in `event`, or None for the owner's own decisions."""
    topic = event.topic
    try:
        if topic == Topic.JOB_ACCEPTED:
            payload = payload_of(event, JobAccepted)
            accepted.add(payload.job.job_id)
            verified = payload.verified or VerifiedContext.claimed(payload.job.slurm)
            return Arrival(
                payload.job, payload.user, payload.reply_to, dict(payload.trace), verified=verified
            )
        if topic.startswith("control."):
            return _command(event)
        if topic in (Topic.QPU_DOWN, Topic.QPU_UP):
            return Operational(topic == Topic.QPU_UP, event.reason or "")
    except ValueError:
        return None  # a record the owner could not have used either
    if topic == Topic.JOB_REJECTED and event.job_id in accepted and event.result is not None:
        error = event.result.error
        if error is not None:
            return Invalidated(event.job_id, error)
    return None


def _command(event: Event) -> Command | None:
    """An applied operator's command as the owner received it (refused ones changed nothing)."""
    applied = payload_of(event, ControlApplied)
    name = CommandName(event.topic.split(".", 1)[1])
    if not applied.ok or name in NOT_REPLAYED:
        return None
    command = ControlCommand(
        command_id=applied.command_id,
        command=name,
        job_id=event.job_id,
        mode=applied.mode,
        message=applied.message,
        allocation=applied.allocation,
        **_registration(applied),
        **_time_ownership(applied),
        # `--now` is not in the payload; the owner's answer to it names the preemption
        force=name is CommandName.CALIBRATION_START and (event.reason or "").startswith("preempt"),
        issued_at=applied.issued_at or event.at,
    )
    return Command(command, event.user, operator=True)


def _time_ownership(applied: ControlApplied) -> dict[str, Any]:
    """A budget's or reservation's fields as the owner applied them (``budget-set``,
    ``budget-top-up``, ``reservation-create``/``-update``/``-delete``), so `simulate` honours
    the budgets and reservations the log records."""
    budget = applied.budget or applied.top_up
    if budget is not None:
        return {
            "account": budget.account,
            "user": budget.user,
            "seconds": budget.seconds,
            "period": budget.period,
        }
    if applied.reservation is not None:
        return {"reservation": applied.reservation}
    if applied.deleted is not None:
        return {"name": applied.deleted}
    return {}


def _registration(applied: ControlApplied) -> dict[str, Any]:
    """An ``allocation-started``'s fields as the owner registered them."""
    known = applied.registered
    if known is None:
        return {}
    return {
        "user": known.user,
        "uid": known.uid,
        "account": known.account,
        "end": known.end,
        "partition": known.partition,
    }


def _mark_batches(inputs: list[Timed], offsets: list[int], within: timedelta) -> None:
    """Mark arrivals that the owner took with the next one in one batch (no decision between)."""
    for i in range(len(inputs) - 1):
        this, after = inputs[i], inputs[i + 1]
        if (
            isinstance(this.given, Arrival)
            and isinstance(after.given, Arrival)
            and offsets[i + 1] == offsets[i] + 1
            and after.at - this.at <= within
        ):
            inputs[i] = Timed(this.at, this.given, batched=True)


class _RunTracker:
    """Folds started / preempted / requeued / final events into each job's `JobRuns`."""

    def __init__(self, runs: dict[str, JobRuns]) -> None:
        self.runs = runs
        # job -> (start, shots, measured before, on a lane)
        self._open: dict[str, tuple[datetime, int, int, bool]] = {}
        self._measured: dict[str, int] = {}

    def see(self, event: Event) -> None:
        job_id = event.job_id
        if not job_id:
            return
        topic = event.topic
        if topic == Topic.JOB_STARTED:
            try:
                shots = payload_of(event, JobStarted).shots
            except ValueError:
                return
            lane = bool(event.data.get("lane"))
            self._open[job_id] = (event.at, shots, self._measured.get(job_id, 0), lane)
            return
        opened = self._open.pop(job_id, None)
        if opened is None:
            return
        began, shots, before, lane = opened
        seconds = max((event.at - began).total_seconds(), 0.0)
        runs = self.runs.setdefault(job_id, JobRuns())
        if topic in (Topic.JOB_PREEMPTED, Topic.JOB_REQUEUED):
            try:
                done = payload_of(event, JobBack).shots_done
            except ValueError:
                return
            self._measured[job_id] = done
            runs.add(seconds, max(done - before, 0), lane)
        elif topic in FINAL and event.result is not None:
            result = event.result
            measured = sum(result.counts.values()) - before
            if result.state is JobState.DONE and measured <= 0:
                measured = shots
            if result.state is JobState.ERROR and result.error is not None:
                runs.error, runs.error_after_s = result.error, seconds
            if measured > 0:
                runs.add(seconds, measured, lane)
        else:
            self._open[job_id] = opened  # progress, stopping, preempting: still running
